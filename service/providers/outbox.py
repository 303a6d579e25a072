"""The outbox: the provider for a channel without credentials.

It prints each message instead of sending it, so Steady runs fully on a bare
machine (INTERFACE.md §1). The address is masked even here: terminals get
copied into tickets and chat.

Reconciliation: the outbox never times out, so its messages only become
`unknown` when a worker dies between the claim and recording the result. It
keeps no record to look up, and a second printed copy reaches nobody, so its
answer is always "not accepted": such a message is simply sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from service.addresses import mask
from service.providers.base import AcceptedCopy, OutboundMessage

OUTBOX = "outbox"  # the provider's name: it writes locally and reaches no carrier


def _print_line(text: str) -> None:
    print(text, flush=True)


class OutboxProvider:
    """Writes each message to a writer (stdout by default) and returns `outbox-<id>`."""

    name = OUTBOX

    def __init__(self, writer: Callable[[str], None] = _print_line) -> None:
        self._writer = writer

    def send(self, message: OutboundMessage) -> str:
        header = f"[outbox] {message.channel} #{message.message_id} to {mask(message.to)}"
        if message.subject is not None:
            header += f" subject: {message.subject}"
        self._writer(f"{header}\n{message.body}")
        return f"outbox-{message.message_id}"

    def find_accepted(self, message: OutboundMessage, since: datetime) -> list[AcceptedCopy]:
        """Nothing is ever on record: resending to the outbox texts nobody twice."""
        return []
