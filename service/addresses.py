"""Addresses: parse, normalise, mask and hash phone numbers and emails.

Parsing is the libraries' job (`phonenumbers`, `email-validator`); this module
only says which errors a person sees and keeps personal data out of logs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import SecretStr

from service.channels import ChannelKind

# Numbers typed without a country code are read as this region (the US-first product).
DEFAULT_PHONE_REGION = "US"
# Masked numbers keep the country code and area prefix, and the last two digits.
MASK_KEEP_HEAD = 4
MASK_KEEP_TAIL = 2
# Google documents that dots in a Gmail address's name do not matter
# (first.last@gmail.com and firstlast@gmail.com are one inbox); googlemail.com is
# the same service. Other providers may treat dots as real, so only these lose them.
DOTLESS_MAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


class InvalidAddress(ValueError):
    """An address a person gave cannot be used; `field` names which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_phone(raw: str, *, region: str = DEFAULT_PHONE_REGION) -> str:
    """Return the number in E.164, or raise InvalidAddress."""
    return parse_mobile(raw, region=region).e164


@dataclass(frozen=True, slots=True)
class MobileNumber:
    """A number that may subscribe, as `phonenumbers` read it: what placing it in time
    (service.people.zones.numbers) needs, so nothing parses or types it twice."""

    number: phonenumbers.PhoneNumber
    kind: int  # a phonenumbers.PhoneNumberType
    e164: str


def parse_mobile(raw: str, *, region: str = DEFAULT_PHONE_REGION) -> MobileNumber:
    """The number a person gave, if it can take text messages; else InvalidAddress."""
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
    return MobileNumber(number, kind, _format(number))


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
    """Return (channel kind, normalised address) for a phone number or an email.

    For looking an address up (`steady messages --to`, `erase`): any number
    `phonenumbers` parses is read, mobile or not (INTERFACE.md §4); whether it may
    subscribe is `normalise_phone`'s question, not this one's.
    """
    if "@" in raw:
        return ChannelKind.EMAIL, normalise_email(raw)
    try:
        number = phonenumbers.parse(raw, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress("phone", "not a phone number we can read") from exc
    return ChannelKind.SMS, _format(number)


def check_timezone(value: str) -> str:
    """Return `value` if it is an IANA zone, else raise InvalidAddress('timezone')."""
    try:
        ZoneInfo(value)
    # OSError: a name too long for the file system (zoneinfo opens it as a path).
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidAddress("timezone", "not a known IANA time zone") from exc
    return value


def mailbox_key(kind: str, address: str) -> str:
    """The mailbox an address reaches, for limits and lookups (the address is kept as given).

    Phone numbers are already E.164. Email: case-insensitive (no mail provider in
    use today treats case as meaningful, though RFC 5321 allows it), without a
    `+tag` (plus addressing: Gmail, Outlook, iCloud, Fastmail, Proton deliver
    `name+anything@` to `name@`), and for Gmail without dots. A tag-only local
    part ("+x@") is kept whole.
    """
    if kind != "email" or "@" not in address:
        return address
    local, _, domain = address.rpartition("@")
    local, domain = local.casefold(), domain.casefold()
    untagged = local.split("+", 1)[0]
    local = untagged or local
    if domain in DOTLESS_MAIL_DOMAINS:
        local, domain = local.replace(".", "") or local, "gmail.com"
    return f"{local}@{domain}"


def mask(address: str) -> str:
    """A form safe for logs and terminals: `+121••••••42`, `a•••@example.com`."""
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}•••@{domain}"
    if len(address) <= MASK_KEEP_HEAD + MASK_KEEP_TAIL:
        return "•" * len(address)
    hidden = len(address) - MASK_KEEP_HEAD - MASK_KEEP_TAIL
    return address[:MASK_KEEP_HEAD] + "•" * hidden + address[-MASK_KEEP_TAIL:]


class AddressHasher:
    """Keyed hashes of normalised addresses, for the suppression list (kept after erasure).

    Built once from STEADY_SECRET_KEY and handed to what reads, adds to or clears
    the list; the key stays inside it (its repr never shows it).
    """

    __slots__ = ("_key",)

    def __init__(self, secret_key: SecretStr | str) -> None:
        raw = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
        self._key = raw.encode()[:64]  # BLAKE2b takes a key of at most 64 bytes

    def __call__(self, address: str) -> str:
        return hashlib.blake2b(address.encode(), key=self._key, digest_size=32).hexdigest()

    def __repr__(self) -> str:
        return "AddressHasher(<key>)"
