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

# Twilio's MessageStatus values, as ours.
TWILIO_STATUS: dict[str, str] = {
    "accepted": S.SENDING,
    "scheduled": S.SENDING,
    "queued": S.SENDING,
    "sending": S.SENDING,
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.DELIVERED,
    "undelivered": S.UNDELIVERED,
    "failed": S.FAILED,
    "canceled": S.FAILED,
}

# Twilio's error for a message it held past the ValidityPeriod we gave it: it never
# went out, because it would have been late (https://www.twilio.com/docs/api/errors/30036).
TWILIO_VALIDITY_EXPIRED = "30036"


def twilio_status(status: str, error_code: str | None) -> str | None:
    """Our status for a Twilio status callback; None for a status we do not track."""
    if error_code == TWILIO_VALIDITY_EXPIRED and status in ("failed", "undelivered"):
        return S.EXPIRED
    return TWILIO_STATUS.get(status)


# SendGrid event types that say where a message is, as ours. `processed` only
# means SendGrid accepted it for delivery, so it is `sent`, not `delivered`; an
# open or a click proves delivery. `bounce` is a final failure whatever its type
# (a "blocked" bounce is not retried by SendGrid either); `deferred` says
# nothing final, SendGrid keeps trying.
SENDGRID_STATUS: dict[str, str] = {
    "processed": S.SENT,
    "delivered": S.DELIVERED,
    "open": S.DELIVERED,
    "click": S.DELIVERED,
    "bounce": S.UNDELIVERED,
    "dropped": S.FAILED,
}


def can_move(current: str, new: str) -> bool:
    """True if a report of `new` may replace `current`."""
    if current in FINAL or current not in RANK or new not in RANK:
        return False
    return RANK[new] > RANK[current]
