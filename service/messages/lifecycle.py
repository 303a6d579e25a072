"""Message status as a state machine: which moves are allowed.

Providers send reports late, twice, and out of order; a status only moves
forward (PRODUCT.md: "delivered is not undone by a late 'sent'"). Anything not
in this table is ignored, not an error.
"""

from __future__ import annotations

from service.storage.models import MessageStatus
from service.storage.models import MessageStatus as S

# How far along a message is. A report may skip ranks but never go back.
RANK: dict[str, int] = {
    S.SCHEDULED: 0,
    S.SENDING: 1,
    S.UNKNOWN: 2,
    S.SENT: 3,
    S.DELIVERED: 4,
    S.UNDELIVERED: 4,
    S.FAILED: 4,
    S.EXPIRED: 4,  # the provider held it past its validity (Twilio 30036)
}
FINAL = frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED, S.EXPIRED, S.CANCELLED})

# Statuses of a nudge that did, or may have, reached the person: they count for
# spacing, the SMS cap and template repeats.
WENT_OUT = (
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.UNKNOWN,
)
OUTSTANDING = (MessageStatus.SCHEDULED, MessageStatus.SENDING)

# Which row goes first when a claim takes several.
PRIORITY_NOW = 0  # answers something a person just did
PRIORITY_NUDGE = 1

MAX_SEND_ATTEMPTS = 3  # PRODUCT.md: transient failures, at most 3 tries


def can_move(current: str, new: str) -> bool:
    """True if a report of `new` may replace `current`."""
    if current in FINAL or current not in RANK or new not in RANK:
        return False
    return RANK[new] > RANK[current]
