"""SMS through Twilio's Programmable Messaging REST API, with the real `twilio` SDK.

One SDK client per provider instance: its `requests.Session` keeps connections
alive, which is most of the per-message cost at ~1,500 sends/s (PERFORMANCE.md).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests
from twilio.base.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    TwilioException,
    TwilioRestException,
)
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped, unused-ignore]
from twilio.http.response import Response  # type: ignore[import-untyped, unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped, unused-ignore]
from urllib3.exceptions import NewConnectionError

from service.providers.base import (
    AcceptedCopy,
    OutboundMessage,
    ProviderError,
    parse_retry_after,
)
from service.providers.twilio.codes import (
    FAILURE_STATUSES,
    PERMANENT_ERROR_CODES,
    PROVIDER,
    TOO_MANY_REQUESTS_CODE,
    cause_of,
    copy_outcome,
)

if TYPE_CHECKING:
    from service.settings import Settings


TWILIO_DEFAULT_API_URL = "https://api.twilio.com"

# Reconciliation reads at most this many of a number's newest messages. Steady
# sends a person at most a few a day, so this reaches back weeks.
LOOKUP_LIMIT = 200
# Only messages created through the REST API can be a lost `messages.create`;
# TwiML replies are `outbound-reply` and are logged from the webhook instead.
REST_API_DIRECTION = "outbound-api"
# Twilio takes a ValidityPeriod of 1 to 36,000 seconds (error 90007 otherwise).
VALIDITY_RANGE_SECONDS = (1, 36_000)
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500


class TwilioErrorResponse(TwilioRestException):  # type: ignore[misc]
    """The SDK's own error for a 4xx/5xx answer, plus the `Retry-After` it would drop.

    The SDK turns an error answer into `TwilioRestException` without its headers,
    so `_HeaderKeepingHttpClient` raises this subclass from the transport instead:
    same fields (status, code, msg, uri, method), and `retry_after` in seconds.
    """

    def __init__(self, response: Response, method: str, uri: str) -> None:
        code: int | None = response.status_code
        detail = ""
        try:
            payload = json.loads(response.text)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            code = payload.get("code", code)
            detail = str(payload.get("message", ""))
        super().__init__(
            response.status_code, uri, f"Unable to complete request: {detail}", code, method
        )
        headers = response.headers or {}
        self.retry_after = parse_retry_after(headers.get("Retry-After"))


class _HeaderKeepingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """`TwilioHttpClient` that raises `TwilioErrorResponse` for error answers.

    Raising here (rather than letting the SDK raise) is how `Retry-After`
    survives; it is per call, so safe with one client shared by threads.
    """

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().request(method, url, *args, **kwargs)
        if response.status_code >= 400:
            raise TwilioErrorResponse(response, method, url)
        return response


def classify_twilio_error(exc: TwilioException) -> ProviderError:
    """Permanent for a known undeliverable code or any other 4xx but 429; else transient."""
    status = int(getattr(exc, "status", None) or HTTP_SERVER_ERROR)
    raw_code = getattr(exc, "code", None)
    code = int(raw_code) if raw_code is not None else None
    retry_after = getattr(exc, "retry_after", None)
    if code in PERMANENT_ERROR_CODES:
        permanent = True
    elif (
        status == HTTP_TOO_MANY_REQUESTS
        or code == TOO_MANY_REQUESTS_CODE
        or status >= HTTP_SERVER_ERROR
    ):
        permanent = False
    else:
        permanent = 400 <= status < HTTP_SERVER_ERROR
    return ProviderError(
        f"twilio answered HTTP {status}" + (f" (error {code})" if code is not None else ""),
        permanent=permanent,
        code=str(code) if code is not None else None,
        retry_after=retry_after,
        http_status=status,
        cause=cause_of(str(code)) if code is not None else None,
    )


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request certainly never reached Twilio (no connection was made)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)  # refused, unresolvable, unreachable


class TwilioSmsProvider:
    """Sends SMS with `client.messages.create`; returns the message SID (`SM…`)."""

    name = PROVIDER

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_url: str = TWILIO_DEFAULT_API_URL,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError(
                "Twilio needs a sender: TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"
            )
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        # An explicit timeout: without one `requests` waits forever on a stuck socket.
        http_client = _HeaderKeepingHttpClient(
            timeout=timeout_seconds, proxy=requests.utils.get_environ_proxies(api_url)
        )
        # `requests` re-reads the proxy and CA-bundle environment on every call (about
        # 7% of a send's CPU, `steady bench` profile); read it once, above and here.
        http_client.session.trust_env = False
        http_client.session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._client = Client(account_sid, auth_token, http_client=http_client)
        # The SDK would rewrite the host for TWILIO_EDGE / TWILIO_REGION found in the
        # environment (ClientBase.get_hostname); the host is ours to choose, below.
        self._client.edge = None
        self._client.region = None
        # The Api domain builds every URL from `base_url` at request time
        # (twilio/base/domain.py `Domain.absolute_url`), so this sends
        # `client.messages.create` to our host: a sandbox, or Twilio itself.
        self._client.api.base_url = api_url.rstrip("/")
        self._messages = self._client.api.v2010.account.messages

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioSmsProvider:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_url=settings.twilio_api_url,
            timeout_seconds=settings.provider_timeout_seconds,
        )

    def send(self, message: OutboundMessage) -> str:
        sender: dict[str, str] = (
            {"from_": self._from_number}
            if self._from_number
            else {"messaging_service_sid": str(self._messaging_service_sid)}
        )
        extra: dict[str, Any] = (
            {"status_callback": message.status_callback} if message.status_callback else {}
        )
        if message.validity_seconds is not None:
            low, high = VALIDITY_RANGE_SECONDS
            extra["validity_period"] = min(high, max(low, message.validity_seconds))
        try:
            created = self._messages.create(to=message.to, body=message.body, **sender, **extra)
        except TwilioRestException as exc:
            error = classify_twilio_error(exc)
        except requests.Timeout:
            # The request may have reached Twilio: the caller can reconcile by listing.
            error = ProviderError("twilio did not answer in time", permanent=False, code="timeout")
        except requests.RequestException as exc:
            if _never_connected(exc):
                error = ProviderError(
                    f"twilio unreachable: {type(exc).__name__}", permanent=False, code="connection"
                )
            else:
                # The connection broke after the request went out: Twilio may have it.
                error = ProviderError(
                    f"twilio connection lost: {type(exc).__name__}",
                    permanent=False,
                    code="connection_lost",
                )
        except TwilioException as exc:
            # e.g. TwilioServiceException (RFC 9457 bodies), which is not a TwilioRestException.
            error = classify_twilio_error(exc)
        else:
            return str(created.sid)
        # The dispatcher logs the failure once, with the attempt number.
        raise error

    def find_accepted(self, message: OutboundMessage, since: datetime) -> list[AcceptedCopy]:
        """Messages Twilio accepted for `message.to` since `since`, matched on sender and body.

        No `DateSent` filter: it is day-granular, and a message Twilio accepted but
        has not sent yet (queued behind the sender's throughput) has no DateSent at
        all, so filtering on it could hide exactly the copy we are looking for. The
        number's newest `LOOKUP_LIMIT` messages are read instead and filtered here
        by `date_created`.
        """
        sender: dict[str, str] = {"from_": self._from_number} if self._from_number else {}
        try:
            records = self._messages.list(
                to=message.to, **sender, limit=LOOKUP_LIMIT, page_size=LOOKUP_LIMIT
            )
        except TwilioRestException as exc:
            error = classify_twilio_error(exc)
        except requests.Timeout:
            error = ProviderError("twilio lookup timed out", permanent=False, code="timeout")
        except requests.RequestException as exc:
            error = ProviderError(
                f"twilio unreachable: {type(exc).__name__}", permanent=False, code="connection"
            )
        except TwilioException as exc:
            error = classify_twilio_error(exc)
        else:
            return [copy for record in records if (copy := self._copy(record, message, since))]
        raise error

    def _copy(self, record: Any, message: OutboundMessage, since: datetime) -> AcceptedCopy | None:
        if record.direction != REST_API_DIRECTION or not record.sid:
            return None
        if record.date_created is not None and record.date_created < since:
            return None
        if self._from_number is None and (
            record.messaging_service_sid != self._messaging_service_sid
        ):
            return None  # another sender's message to the same person
        error_code = str(record.error_code) if record.error_code else None
        status = str(record.status)
        return AcceptedCopy(
            provider_id=str(record.sid),
            # The body renders the same every time (compose is deterministic);
            # surrounding whitespace is not something Twilio promises to keep.
            same_content=(record.body or "").strip() == message.body.strip(),
            outcome=copy_outcome(status),
            accepted_at=record.date_created,
            error_code=error_code,
            cause=cause_of(error_code) if status in FAILURE_STATUSES else None,
        )
