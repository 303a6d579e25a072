"""SendGrid's words, read into Steady's: event names and the id we tag mail with.

No SDK import: the web process and feedback read this without loading `sendgrid`.
"""

from __future__ import annotations

from service.providers.base import Cause, CopyOutcome, DeliveryReason, DeliveryStatus, Engagement

# The provider's name on messages and delivery events.
PROVIDER = "sendgrid"

# The custom arg on every email we send; SendGrid copies it onto each event.
MESSAGE_ID_ARG = "steady_message_id"

# Event types that say where a message is, as ours. `processed` only means
# SendGrid accepted it for delivery, so it is `sent`, not `delivered`; an open or
# a click proves delivery. `bounce` is a final failure whatever its type (a
# "blocked" bounce is not retried by SendGrid either); `deferred` says nothing
# final, SendGrid keeps trying.
STATUSES: dict[str, DeliveryStatus] = {
    "processed": "sent",
    "delivered": "delivered",
    "open": "delivered",
    "click": "delivered",
    "bounce": "undelivered",
    "dropped": "failed",
}
ENGAGEMENT = {"open": Engagement.OPENED, "click": Engagement.CLICKED}
# Events that remove an address for good: the address cannot be reached.
UNREACHABLE = frozenset({"bounce", "dropped"})
# Events that are the person's own opt-out, exactly like our unsubscribe link.
OPT_OUTS = frozenset({"unsubscribe", "group_unsubscribe"})
SPAM_REPORT = "spamreport"
# A bounce of this type is a temporary block by the receiving server (SendGrid's
# "Blocked" classification), not a dead address: recorded, nothing suppressed.
TRANSIENT_BOUNCE_TYPE = "blocked"

# The Email Activity API's summary statuses; `processed` (and anything else) is `sent`.
ACTIVITY_OUTCOMES: dict[str, CopyOutcome] = {
    "delivered": "delivered",
    "not_delivered": "undelivered",
}


def cause_of(event: str, bounce_type: str | None) -> Cause | None:
    """What an event says about the address, or None if nothing."""
    label = f"sendgrid_{event}"
    if event == SPAM_REPORT:
        return Cause(DeliveryReason.SPAM, label)
    if event in OPT_OUTS:
        return Cause(DeliveryReason.OPTED_OUT, label)
    if event in UNREACHABLE:
        if event == "bounce" and (bounce_type or "bounce") == TRANSIENT_BOUNCE_TYPE:
            return Cause(DeliveryReason.TRANSIENT, label)
        return Cause(DeliveryReason.UNREACHABLE, label)
    return None
