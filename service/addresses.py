"""Addresses: parse, normalise, mask and hash phone numbers and emails.

Parsing is the libraries' job (`phonenumbers`, `email-validator`); this module
only says which errors a person sees and keeps personal data out of logs.
"""

from __future__ import annotations

import hashlib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from service.channels import ChannelKind

# Numbers typed without a country code are read as this region (the US-first product).
DEFAULT_PHONE_REGION = "US"
# Masked numbers keep the country code and area prefix, and the last two digits.
MASK_KEEP_HEAD = 4
MASK_KEEP_TAIL = 2


class InvalidAddress(ValueError):
    """An address a person gave cannot be used; `field` names which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_phone(raw: str, *, region: str = DEFAULT_PHONE_REGION) -> str:
    """Return the number in E.164, or raise InvalidAddress."""
    return _format(_parse_mobile(raw, region))


def _parse_mobile(raw: str, region: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress("phone", "not a phone number we can read") from exc
    # One type lookup answers both questions: UNKNOWN is what an invalid number gets
    # (is_valid_number is the same lookup, and it is most of a number's parsing cost).
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN or not phonenumbers.is_possible_number(number):
        raise InvalidAddress("phone", "not a valid phone number")
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        raise InvalidAddress("phone", "a landline cannot receive text messages")
    return number


def _format(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalise_email(raw: str, *, check_deliverability: bool = False) -> str:
    """Return the normalised address, or raise InvalidAddress."""
    try:
        result = validate_email(raw, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidAddress("email", str(exc)) from exc
    return str(result.normalized)


def parse_address(raw: str) -> tuple[ChannelKind, str]:
    """Return (channel kind, normalised address) for a phone number or an email."""
    if "@" in raw:
        return ChannelKind.EMAIL, normalise_email(raw)
    return ChannelKind.SMS, normalise_phone(raw)


def check_timezone(value: str) -> str:
    """Return `value` if it is an IANA zone, else raise InvalidAddress('timezone')."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidAddress("timezone", "not a known IANA time zone") from exc
    return value


def mask(address: str) -> str:
    """A form safe for logs and terminals: `+121••••••42`, `a•••@example.com`."""
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}•••@{domain}"
    if len(address) <= MASK_KEEP_HEAD + MASK_KEEP_TAIL:
        return "•" * len(address)
    hidden = len(address) - MASK_KEEP_HEAD - MASK_KEEP_TAIL
    return address[:MASK_KEEP_HEAD] + "•" * hidden + address[-MASK_KEEP_TAIL:]


def address_hash(address: str, secret: str) -> str:
    """A keyed hash of a normalised address, for the suppression list after erasure."""
    return hashlib.blake2b(address.encode(), key=secret.encode()[:64], digest_size=32).hexdigest()
