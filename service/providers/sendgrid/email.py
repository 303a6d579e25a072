"""Email through SendGrid's v3 Mail Send API, with the real `sendgrid` SDK.

Every email carries our message id in `custom_args` (SendGrid copies custom args
onto each event webhook event, which is how events find their message) and the
RFC 8058 one-click unsubscribe headers (INTERFACE.md §2).
"""

from __future__ import annotations

import http.client
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

import structlog
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, From, Header, Mail, To

from service.providers.base import (
    AcceptedCopy,
    OutboundMessage,
    ProviderError,
    parse_retry_after,
)
from service.providers.sendgrid.codes import ACTIVITY_OUTCOMES, MESSAGE_ID_ARG, PROVIDER

if TYPE_CHECKING:
    from service.settings import Settings

log = structlog.get_logger(__name__)

SENDGRID_DEFAULT_API_URL = "https://api.sendgrid.com"
DEFAULT_SENDER_NAME = "Steady"
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500
# One id is one message; a few rows allow for the same id in another environment
# sharing the account (told apart by the recipient).
ACTIVITY_LOOKUP_LIMIT = 10


def classify_sendgrid_error(exc: HTTPError) -> ProviderError:
    """429 and 5xx are transient (honouring Retry-After); any other 4xx is permanent."""
    status = int(exc.status_code)
    headers = exc.headers
    retry_after = parse_retry_after(headers.get("Retry-After") if headers is not None else None)
    permanent = 400 <= status < HTTP_SERVER_ERROR and status != HTTP_TOO_MANY_REQUESTS
    return ProviderError(
        f"sendgrid answered HTTP {status}",
        permanent=permanent,
        code=str(status),
        retry_after=retry_after,
        http_status=status,
    )


class SendGridEmailProvider:
    """Sends one email per call; returns SendGrid's `X-Message-Id`."""

    name = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        from_email: str,
        api_url: str = SENDGRID_DEFAULT_API_URL,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._from_email = from_email
        self._client = SendGridAPIClient(api_key=api_key, host=api_url.rstrip("/"))
        # python_http_client's Client hands `timeout` to every child client it builds
        # for `.mail.send.post` (Client._build_client); urllib waits forever without it.
        self._client.client.timeout = timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridEmailProvider:
        if settings.sendgrid_api_key is None or not settings.email_from:
            raise ValueError("SENDGRID_API_KEY and STEADY_EMAIL_FROM are required")
        return cls(
            api_key=settings.sendgrid_api_key.get_secret_value(),
            from_email=settings.email_from,
            api_url=settings.sendgrid_api_url,
            timeout_seconds=settings.provider_timeout_seconds,
        )

    def build_mail(self, message: OutboundMessage) -> Mail:
        """The Mail Send request for one message (public so tests can read it)."""
        mail = Mail(
            from_email=From(self._from_email, message.sender_name or DEFAULT_SENDER_NAME),
            to_emails=To(message.to),
            subject=message.subject,
            plain_text_content=message.body,
            html_content=message.html,
        )
        mail.custom_arg = CustomArg(MESSAGE_ID_ARG, str(message.message_id))
        if message.unsubscribe_url:
            mail.header = [
                Header("List-Unsubscribe", f"<{message.unsubscribe_url}>"),
                # RFC 8058: one POST to the URL unsubscribes, no page in between.
                Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ]
        return mail

    def send(self, message: OutboundMessage) -> str:
        if not message.subject:
            raise ProviderError("an email needs a subject", permanent=True, code="no_subject")
        mail = self.build_mail(message)
        try:
            response = self._client.send(mail)
        except HTTPError as exc:
            error = classify_sendgrid_error(exc)
        except TimeoutError:
            # The request may have been accepted; events will tell (custom_args).
            error = ProviderError(
                "sendgrid did not answer in time", permanent=False, code="timeout"
            )
        except URLError as exc:
            timed_out = isinstance(exc.reason, TimeoutError)
            error = ProviderError(
                f"sendgrid unreachable: {type(exc.reason).__name__}",
                permanent=False,
                code="timeout" if timed_out else "connection",
            )
        except (OSError, http.client.HTTPException) as exc:
            # Raised while reading the answer (urllib wraps connect errors in URLError):
            # the request went out, so SendGrid may have accepted it.
            error = ProviderError(
                f"sendgrid connection lost: {type(exc).__name__}",
                permanent=False,
                code="connection_lost",
            )
        else:
            provider_id = response.headers.get("X-Message-Id")
            if not provider_id:
                # Accepted all the same (2xx): retrying would send it twice.
                log.warning("sendgrid_no_message_id", message_id=message.message_id)
            return str(provider_id or "")
        # The dispatcher logs the failure once, with the attempt number.
        raise error

    def find_accepted(self, message: OutboundMessage, since: datetime) -> list[AcceptedCopy]:
        """Emails SendGrid holds with our id in `custom_args`, through the Email Activity API.

        `GET /v3/messages?query=unique_args['steady_message_id']="123"` (the query
        language calls custom args `unique_args`). The API is a paid add-on and the
        key needs Email Activity access; without either SendGrid answers an error,
        which leaves the message `unknown` rather than guessing. `since` is not
        needed: our id names one message.
        """
        query = f"unique_args['{MESSAGE_ID_ARG}']=\"{message.message_id}\""
        try:
            response = self._client.client.messages.get(
                query_params={"query": query, "limit": ACTIVITY_LOOKUP_LIMIT}
            )
            payload = json.loads(response.body or b"{}")
        except HTTPError as exc:
            error = classify_sendgrid_error(exc)
        except (TimeoutError, URLError, OSError, http.client.HTTPException) as exc:
            error = ProviderError(
                f"sendgrid lookup failed: {type(exc).__name__}", permanent=False, code="connection"
            )
        except ValueError:
            error = ProviderError(
                "sendgrid lookup answered no JSON", permanent=False, code="lookup"
            )
        else:
            return _activity_copies(payload, message.to)
        raise error


def _activity_copies(payload: Any, address: str) -> list[AcceptedCopy]:
    """Copies from an Email Activity answer, for this recipient only."""
    rows = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise ProviderError("sendgrid lookup answered an unexpected shape", permanent=False)
    copies: list[AcceptedCopy] = []
    for row in rows:
        if not isinstance(row, dict) or not row.get("msg_id"):
            continue
        # Our ids restart in every database: the same id to someone else is
        # another environment's message, not ours.
        if str(row.get("to_email", "")).casefold() != address.casefold():
            continue
        copies.append(
            AcceptedCopy(
                # msg_id is the send's X-Message-Id, a dot, then a per-recipient suffix.
                provider_id=str(row["msg_id"]).split(".", 1)[0],
                same_content=True,
                outcome=ACTIVITY_OUTCOMES.get(str(row.get("status")), "sent"),
            )
        )
    return copies
