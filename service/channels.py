"""The ways Steady reaches a person: one name, used by every part.

A channel's kind is stored in the database, chosen by pacing and sent by a
provider; all three use this enum (a `str`, so it reads and compares as "sms").
The table of a person's addresses is `service.storage.models.Channel`.
"""

from __future__ import annotations

from enum import StrEnum


class ChannelKind(StrEnum):
    SMS = "sms"
    EMAIL = "email"
