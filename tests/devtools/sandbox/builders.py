"""The credentials and sender the sandbox tests use, and filters for their callbacks."""

from __future__ import annotations

from collections.abc import Callable

from service.devtools.sandbox.receiver import ReceivedRequest

ACCOUNT_SID = "AC" + "fedcba9876543210" * 2
AUTH_TOKEN = "token-used-by-the-client"
FROM_NUMBER = "+15005550006"
TWIML = "<?xml version='1.0' encoding='UTF-8'?><Response><Message>Got it.</Message></Response>"


def callbacks_for(sid: str) -> Callable[[ReceivedRequest], bool]:
    def matches(request: ReceivedRequest) -> bool:
        return request.form().get("MessageSid") == sid

    return matches


# --- SendGrid Mail Send and events ----------------------------------------------------------


def _mail(to: str = "sam@example.org") -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": to}], "custom_args": {"steady_message_id": "9"}}],
        "from": {"email": "nudges@steady.example"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "Hello"}],
        "categories": ["nudge"],
    }
