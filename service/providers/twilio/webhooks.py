"""Twilio's webhooks: the signature check, status callbacks and inbound texts.

The routes (`service.web.webhooks`) hand over the form fields and headers; what
comes back is in Steady's words (`DeliveryReport`, `InboundText`).
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from service.channels import ChannelKind
from service.ids import parse_row_id
from service.providers.base import DeliveryReport, InboundText
from service.providers.twilio.codes import FAILURE_STATUSES, PROVIDER, cause_of, delivery_status

SIGNATURE_HEADER = "X-Twilio-Signature"
TWIML = "application/xml"
EVENT_KEY_LENGTH = 128  # DeliveryEvent.event_key


def signed(
    auth_token: str | None, url: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> bool:
    """Whether X-Twilio-Signature is Twilio's signature of `url` and the form `params`.

    `url` must be the one Twilio posted to as configured (our public URL, path
    and query), never one rebuilt from the Host header: behind a TLS-terminating
    proxy the request we see is not the URL Twilio signed.
    """
    signature = headers.get(SIGNATURE_HEADER)
    if auth_token is None or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def status_report(params: Mapping[str, str], message_id: str | None) -> DeliveryReport | None:
    """A status callback as a report; None when it names no message or no status.

    `message_id` is our id from the callback URL's query, when it has one.
    """
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    sid = params.get("MessageSid") or params.get("SmsSid")
    error_code = params.get("ErrorCode") or None
    if not sid or not status:
        return None
    return DeliveryReport(
        provider=PROVIDER,
        channel=ChannelKind.SMS,
        # One report per (message, status, error): Twilio's retries and our
        # sandbox's repeats share it, so the unique index drops them.
        event_key=f"twilio:{sid}:{status}:{error_code or ''}"[:EVENT_KEY_LENGTH],
        event=status,
        message_id=parse_row_id(message_id),
        provider_id=sid,
        status=delivery_status(status, error_code),
        # Only a failure's ErrorCode says why it did not arrive; one on a
        # delivered report changes nothing.
        cause=cause_of(error_code) if status in FAILURE_STATUSES else None,
        error_code=error_code,
        payload=dict(params),
    )


def inbound_text(params: Mapping[str, str]) -> InboundText | None:
    """A text a person sent us; None when the post names no sender."""
    sender = params.get("From", "")
    if not sender:
        return None
    return InboundText(
        provider_id=params.get("MessageSid"), sender=sender, body=params.get("Body", "")
    )


def reply_twiml(reply: str | None) -> str:
    """The TwiML answer to an inbound text: our reply, or nothing."""
    twiml = MessagingResponse()
    if reply:
        twiml.message(reply)
    return str(twiml)
