"""What the sandbox remembers: accepted messages, fault rules, counters, its signing key.

All of it lives on one event loop (the sandbox's), so nothing here takes a lock.
Memory is bounded: the message log keeps the newest `capacity` messages and the
counters keep the totals.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

Api = Literal["twilio", "sendgrid"]

# ~1 KB a message: 200,000 keeps ~200 MB at most, over a minute of sends at 3,000/s.
DEFAULT_MESSAGE_CAPACITY = 200_000
EXCHANGE_CAPACITY = 10_000
# A fixed, valid-looking Account SID for operators who have none.
SANDBOX_ACCOUNT_SID = "AC" + hashlib.md5(b"steady-sandbox", usedforsecurity=False).hexdigest()
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105 - the sandbox's own published token
TIMEOUT_FAULT_SLEEP_SECONDS = 30.0


@dataclass(slots=True)
class SandboxMessage:
    """One accepted request, either API; Twilio resource fields are unused for email."""

    api: Api
    id: str
    to: str
    received_at: float
    params: dict[str, Any]
    body: str | None = None
    subject: str | None = None
    account_sid: str = ""
    from_: str | None = None
    messaging_service_sid: str | None = None
    status: str = "queued"
    date_sent: float | None = None
    date_updated: float | None = None
    error_code: int | None = None
    num_segments: int = 1

    def to_json(self) -> dict[str, Any]:
        """The inspection view (`GET /sandbox/messages`)."""
        view: dict[str, Any] = {
            "api": self.api,
            "id": self.id,
            "to": self.to,
            "status": self.status,
            "received_at": self.received_at,
            "params": self.params,
        }
        if self.api == "twilio":
            view["body"] = self.body
        else:
            view["subject"] = self.subject
        if self.error_code is not None:
            view["error_code"] = self.error_code
        return view


class MessageLog:
    """The newest `capacity` messages in arrival order, findable by id."""

    def __init__(self, capacity: int = DEFAULT_MESSAGE_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: deque[SandboxMessage] = deque()
        self._by_id: dict[str, SandboxMessage] = {}

    def add(self, message: SandboxMessage) -> None:
        if len(self._entries) >= self.capacity:
            oldest = self._entries.popleft()
            self._by_id.pop(oldest.id, None)
        self._entries.append(message)
        self._by_id[message.id] = message

    def get(self, message_id: str) -> SandboxMessage | None:
        return self._by_id.get(message_id)

    def __iter__(self) -> Iterator[SandboxMessage]:
        return iter(self._entries)

    def __reversed__(self) -> Iterator[SandboxMessage]:
        return reversed(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._by_id.clear()


CALLBACK_STATUSES = frozenset({"undelivered", "failed"})
# 30003 unreachable destination handset; 30008 unknown error (Twilio's error dictionary).
DEFAULT_CALLBACK_ERROR_CODES = {"undelivered": "30003", "failed": "30008"}
TWILIO_VALIDITY_EXPIRED = "30036"  # the ValidityPeriod ran out in Twilio's queue
SENDGRID_FAULT_EVENTS = frozenset({"bounce", "dropped"})


class FaultRuleError(ValueError):
    """A fault rule the sandbox cannot apply; the message says which field."""


@dataclass(slots=True)
class FaultRule:
    """One way to misbehave, for the requests it matches (`POST /sandbox/faults`).

    `http_status` answers with that error (Twilio's or SendGrid's error body);
    `timeout` holds the answer back for `sleep_seconds` (a slow API still accepts
    the message unless `http_status` is set too); `callback_status` / `error_code`
    and `sendgrid_event` accept the message but report that failure afterwards.
    `expire` accepts the message and then reports it `failed` with 30036, as
    Twilio does when a message outlived the ValidityPeriod it was sent with.
    `times` limits how many requests it applies to (unset: until cleared).
    """

    match_to: str | None = None
    api: Api | None = None
    http_status: int | None = None
    twilio_code: int | None = None
    retry_after: float | None = None
    timeout: bool = False
    sleep_seconds: float = TIMEOUT_FAULT_SLEEP_SECONDS
    times: int | None = None
    callback_status: str | None = None
    error_code: str | None = None
    sendgrid_event: str | None = None
    message: str | None = None
    expire: bool = False

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise FaultRuleError("each fault rule is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultRuleError(f"unknown fault fields: {', '.join(unknown)}")
        rule = cls(**data)
        if rule.expire:
            rule.callback_status, rule.error_code = "failed", TWILIO_VALIDITY_EXPIRED
        if rule.api not in (None, "twilio", "sendgrid"):
            raise FaultRuleError("api must be 'twilio' or 'sendgrid'")
        if rule.http_status is not None and not 400 <= int(rule.http_status) <= 599:
            raise FaultRuleError("http_status must be 4xx or 5xx")
        if rule.error_code is not None:
            rule.error_code = str(rule.error_code)
            rule.callback_status = rule.callback_status or "undelivered"
        if rule.callback_status is not None:
            if rule.callback_status not in CALLBACK_STATUSES:
                raise FaultRuleError("callback_status must be 'undelivered' or 'failed'")
            rule.error_code = rule.error_code or DEFAULT_CALLBACK_ERROR_CODES[rule.callback_status]
        if rule.sendgrid_event is not None and rule.sendgrid_event not in SENDGRID_FAULT_EVENTS:
            raise FaultRuleError("sendgrid_event must be 'bounce' or 'dropped'")
        if rule.times is not None and int(rule.times) < 1:
            raise FaultRuleError("times must be at least 1")
        if not (rule.http_status or rule.timeout or rule.callback_status or rule.sendgrid_event):
            raise FaultRuleError(
                "a rule needs one of http_status, timeout, callback_status/error_code, "
                "sendgrid_event"
            )
        return rule

    def applies_to(self, api: Api, recipients: list[str]) -> bool:
        if self.api is not None and self.api != api:
            return False
        if self.callback_status is not None and api != "twilio":
            return False
        if self.sendgrid_event is not None and api != "sendgrid":
            return False
        return self.match_to is None or self.match_to in recipients

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class FaultBook:
    """Fault rules in the order given; the first one that matches is used up once."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def take(self, api: Api, recipients: list[str]) -> FaultRule | None:
        if not self.rules:
            return None
        for rule in self.rules:
            if rule.applies_to(api, recipients):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                return rule
        return None


@dataclass(slots=True)
class SigningKey:
    """SendGrid's Signed Event Webhook key pair: ECDSA P-256, signatures over SHA-256."""

    private_key: ec.EllipticCurvePrivateKey
    public_key_b64: str

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_key(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the sandbox signing key must be an EC P-256 private key (PEM)")
        return cls.from_private_key(key)

    @classmethod
    def from_private_key(cls, key: ec.EllipticCurvePrivateKey) -> SigningKey:
        # SendGrid shows the verification key as base64 DER SubjectPublicKeyInfo,
        # which `EventWebhook` wraps in PEM armour itself.
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private_key=key, public_key_b64=base64.b64encode(der).decode("ascii"))

    def sign(self, timestamp: str, body: bytes) -> str:
        """base64 DER ECDSA signature over timestamp + raw body, as SendGrid signs."""
        signature = self.private_key.sign(
            timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256())
        )
        return base64.b64encode(signature).decode("ascii")


@dataclass
class SandboxState:
    """Everything one sandbox app knows; stored on `app.state.sandbox`."""

    public_url: str
    events_url: str
    auth_token: str
    signing_key: SigningKey
    callbacks: bool
    callback_delay_seconds: float
    account_sid: str = SANDBOX_ACCOUNT_SID
    messages: MessageLog = field(default_factory=MessageLog)
    faults: FaultBook = field(default_factory=FaultBook)
    counts: Counter[str] = field(default_factory=Counter)
    exchanges: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=EXCHANGE_CAPACITY)
    )
    started_at: float = field(default_factory=time.time)
    # Bumped by every reset: a request held by a timeout fault across a reset is
    # answered but not recorded, so it cannot leak into the next test's view.
    generation: int = 0

    @property
    def public_key_b64(self) -> str:
        return self.signing_key.public_key_b64

    @property
    def inbound_url(self) -> str:
        return f"{self.public_url}/webhooks/twilio/inbound"

    def reset(self) -> None:
        """Forget messages, exchanges and counts (not faults: `DELETE /sandbox/faults`)."""
        self.messages.clear()
        self.exchanges.clear()
        self.counts.clear()
        self.generation += 1
