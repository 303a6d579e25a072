"""Twilio's words, read into Steady's: message statuses and error codes.

Every Twilio status and error code Steady acts on is named here and nowhere
else (https://www.twilio.com/docs/api/errors/<code>). No SDK import: the
dispatcher and the web process read this without loading the `twilio` package.
"""

from __future__ import annotations

from service.providers.base import Cause, CopyOutcome, DeliveryReason, DeliveryStatus

# The provider's name on messages, delivery events and the sender's rate-limit key.
PROVIDER = "twilio"

# Our message id rides in the status callback URL's query (`?m=<id>`), so a
# callback that beats our own commit of the SID still finds its message.
MESSAGE_ID_QUERY = "m"

# Twilio's MessageStatus values, as ours
# (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values).
STATUSES: dict[str, DeliveryStatus] = {
    "accepted": "sending",
    "scheduled": "sending",
    "queued": "sending",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
# Statuses whose ErrorCode says why the message did not arrive.
FAILURE_STATUSES = frozenset({"undelivered", "failed"})
# 30036: Twilio held the message past the ValidityPeriod we gave it and dropped it
# unsent; it would have been late (the dispatcher sets ValidityPeriod on nudges).
VALIDITY_EXPIRED = "30036"


def delivery_status(status: str, error_code: str | None) -> DeliveryStatus | None:
    """Our status for a callback's MessageStatus and ErrorCode; None for one we do not track."""
    if error_code == VALIDITY_EXPIRED and status in FAILURE_STATUSES:
        return "expired"
    return STATUSES.get(status)


# Error codes after which the same message can never go through.
PERMANENT_ERROR_CODES = frozenset(
    {
        21211,  # invalid 'To' phone number
        21408,  # permission to send to this region not enabled
        21610,  # recipient replied STOP: Twilio blocks further messages
        21612,  # 'To' cannot be reached from the 'From' number
        21614,  # 'To' is not a mobile number
        30005,  # unknown destination handset
        30006,  # landline or unreachable carrier
        30007,  # carrier filtering (message blocked)
    }
)
TOO_MANY_REQUESTS_CODE = 20429

# 21610: the recipient replied STOP to our sender at the carrier; it is their STOP.
OPTED_OUT = "21610"
# The number can never receive SMS from us: invalid (21211), not a mobile (21614),
# unknown handset (30005), landline or unreachable carrier (30006).
UNREACHABLE = frozenset({"21211", "21614", "30005", "30006"})
# 30003 "unreachable destination handset" is often a phone that is off or out of
# coverage: absent, not gone (a run of them is, `service.people.suppression`).
HANDSET_UNREACHABLE = "30003"
# 30007: the carrier filtered the message as unwanted.
CARRIER_FILTERED = "30007"
# The 3002x family is US A2P 10DLC throughput and daily caps (30022 rate limit,
# 30023 daily cap, 30027 T-Mobile daily limit); the 3003x family is sender
# registration and verification (30032 toll-free deactivated, 30034 unregistered
# number, 30035 registration pending). Neither is about the person's number.
SENDER_COMPLIANCE_PREFIXES = ("3002", "3003")


def cause_of(code: str | None) -> Cause | None:
    """What a Twilio error code says about the number, or None if nothing."""
    if not code or code == VALIDITY_EXPIRED:  # our deadline, nothing about the number
        return None
    if code == OPTED_OUT:
        return Cause(DeliveryReason.OPTED_OUT, f"carrier_opt_out_{code}", code)
    if code in UNREACHABLE:
        return Cause(DeliveryReason.UNREACHABLE, f"twilio_{code}", code)
    if code == HANDSET_UNREACHABLE:
        return Cause(DeliveryReason.ABSENT, f"twilio_{code}", code)
    if code == CARRIER_FILTERED:
        return Cause(DeliveryReason.FILTERED, f"carrier_filtering_{code}", code)
    if code.startswith(SENDER_COMPLIANCE_PREFIXES):
        return Cause(DeliveryReason.SENDER_BLOCKED, f"sender_compliance_{code}", code)
    return None


# A final status as a looked-up copy's outcome (reconciliation).
FINAL_OUTCOMES: dict[DeliveryStatus, CopyOutcome] = {
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}


def copy_outcome(status: str) -> CopyOutcome:
    """A looked-up message's status as a copy's outcome; one not yet final is `sent`."""
    return FINAL_OUTCOMES.get(STATUSES.get(status, "sent"), "sent")
