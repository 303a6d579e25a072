"""Signed, expiring, single-purpose link tokens (confirm, unsubscribe, preferences).

Each purpose has its own salt, so an unsubscribe token can never confirm and a
confirm token can never open the preferences page.
"""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadSignature, URLSafeTimedSerializer


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


# How long a link keeps working. Unsubscribe links sit in old emails and must keep
# working for a long time (CAN-SPAM asks for at least 30 days after sending).
MAX_AGE_SECONDS = {
    Purpose.CONFIRM: 7 * 24 * 3600,
    Purpose.UNSUBSCRIBE: 365 * 24 * 3600,
    Purpose.PREFERENCES: 90 * 24 * 3600,
}


class InvalidToken(Exception):
    """The token is forged, for another purpose, or expired."""


def make_token(secret_key: str, purpose: Purpose, channel_id: int) -> str:
    return URLSafeTimedSerializer(secret_key, salt=f"steady.{purpose}").dumps(channel_id)


def read_token(secret_key: str, purpose: Purpose, token: str) -> int:
    """Return the channel id the token was made for, or raise InvalidToken."""
    serializer = URLSafeTimedSerializer(secret_key, salt=f"steady.{purpose}")
    try:
        value = serializer.loads(token, max_age=MAX_AGE_SECONDS[purpose])
    except BadSignature as exc:  # SignatureExpired is a BadSignature
        raise InvalidToken(str(exc)) from exc
    if not isinstance(value, int):
        raise InvalidToken("token does not name a channel")
    return value
