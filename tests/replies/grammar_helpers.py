"""The short name the reply grammar tables use for a command."""

from __future__ import annotations

from service.replies.grammar_rows import Command

C = Command
