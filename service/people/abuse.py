"""Who may sign up, and how often (PRODUCT.md "Abuse", issue 11).

A public form that sends SMS is a target for SMS pumping (toll fraud: bots
sign up premium-rate and international-network numbers whose operators share
the termination fee) and for bombing someone else's phone or inbox. Steady:

* sends confirmations only to mobile numbers (`phonenumbers` types MOBILE and
  FIXED_LINE_OR_MOBILE) of `STEADY_SMS_COUNTRIES`: never premium rate, shared
  cost, personal, pager, UAN, VoIP, toll free or the international networks;
* limits signups per client address (an IPv6 client by its /64), per number
  prefix (country code and the first three national digits, where pumping
  ranges cluster) and per address
  (its mailbox: case, `+tags` and Gmail dots do not make a new one), shared by
  every web process through Redis;
* keeps a daily budget of confirmation SMS for the whole service (UTC day):
  past it, SMS signups get 429, JOIN texts get no answer, and operators get an
  ERROR log line once and a metric their alert watches.

Every limit answers the same for known and unknown addresses: the counts are
of attempts, never of what the database holds, so a 429 tells nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import phonenumbers
import structlog

from service.addresses import InvalidAddress, mailbox_key
from service.people.throttle import Limit, Throttle, client_key
from service.reporting.metrics import record_signup_refused
from service.settings import Settings

log = structlog.get_logger(__name__)

SMS_NUMBER_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
# Pumping ranges cluster in a prefix: the country code and this many national digits.
PREFIX_NATIONAL_DIGITS = 3
HOUR = 3600
DAY = 24 * HOUR
# Signups naming one address (its mailbox): a person who mistyped something may
# try again, nobody needs more (the confirmation cap is 3 a day anyway).
SIGNUPS_PER_ADDRESS_PER_DAY = 3
# Why a signup was refused: the metric's label and the log field.
REFUSED_CLIENT = "client"
REFUSED_PREFIX = "prefix"
REFUSED_ADDRESS = "address"
REFUSED_BUDGET = "confirmation_budget"


def sms_number_problem(e164: str, countries: Iterable[str]) -> str | None:
    """Why this number may not subscribe by SMS, or None if it may."""
    number = phonenumbers.parse(e164, None)
    region = phonenumbers.region_code_for_number(number)
    if region not in set(countries):
        return "text messages go only to mobile numbers of the countries we serve"
    if phonenumbers.number_type(number) not in SMS_NUMBER_TYPES:
        return "text messages go only to mobile numbers"
    return None


def check_sms_number(e164: str, countries: Iterable[str]) -> None:
    """Raise InvalidAddress('phone') unless the number may subscribe by SMS."""
    problem = sms_number_problem(e164, countries)
    if problem is not None:
        raise InvalidAddress("phone", problem)


def number_country(e164: str) -> str:
    """The ISO country of a number (`ZZ` when unknown): a metric label, not personal."""
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    return str(region or "ZZ")


def number_prefix(e164: str) -> str:
    """`+<country code><first three national digits>`: where pumping ranges sit."""
    number = phonenumbers.parse(e164, None)
    national = phonenumbers.national_significant_number(number)
    return f"+{number.country_code}{national[:PREFIX_NATIONAL_DIGITS]}"


@dataclass(frozen=True)
class SignupAttempt:
    client: str  # the client address as the server resolved it (trusted proxies only)
    phone: str | None  # E.164, already checked
    email: str | None


@dataclass(frozen=True)
class Refusal:
    reason: str
    retry_after: int


def seconds_to_next_utc_day(now: datetime) -> int:
    today = now.astimezone(UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return max(1, int((midnight - now).total_seconds()))


class SignupGuard:
    """The signup limits and the confirmation budget, over one `Throttle`."""

    def __init__(
        self,
        throttle: Throttle,
        secret: str,
        *,
        per_client_per_hour: int,
        per_prefix_per_hour: int,
        confirmations_per_day: int,
    ) -> None:
        self.throttle = throttle
        self._key = secret.encode()
        self.per_client = Limit("signup-client", per_client_per_hour, HOUR)
        self.per_prefix = Limit("signup-prefix", per_prefix_per_hour, HOUR)
        self.per_address = Limit("signup-address", SIGNUPS_PER_ADDRESS_PER_DAY, DAY)
        # A fixed window under a key naming the UTC day: the budget is per day.
        self.budget = Limit("confirmation-budget", max(confirmations_per_day, 1), DAY, fixed=True)
        self.budget_open = confirmations_per_day > 0
        self.budget_alert = Limit("confirmation-budget-alert", 1, DAY, fixed=True)

    def _hashed(self, value: str) -> str:
        """Keys name addresses by a keyed hash: no personal data in Redis."""
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def admit(self, attempt: SignupAttempt, now: datetime) -> Refusal | None:
        """Count a signup against every limit it falls under; a Refusal past any of them."""
        checks: list[tuple[str, Limit, str]] = [
            (REFUSED_CLIENT, self.per_client, client_key(attempt.client))
        ]
        if attempt.phone is not None:
            checks.append(
                (REFUSED_PREFIX, self.per_prefix, self._hashed(number_prefix(attempt.phone)))
            )
            checks.append((REFUSED_ADDRESS, self.per_address, self._hashed(attempt.phone)))
        if attempt.email is not None:
            checks.append(
                (
                    REFUSED_ADDRESS,
                    self.per_address,
                    self._hashed(mailbox_key("email", attempt.email)),
                )
            )
        for reason, limit, key in checks:
            verdict = self.throttle.hit(limit, key)
            if not verdict.allowed:
                return self._refused(reason, verdict.retry_after)
        if attempt.phone is not None and not self.spend_confirmation(now):
            return self._refused(REFUSED_BUDGET, seconds_to_next_utc_day(now))
        return None

    def spend_confirmation(self, now: datetime) -> bool:
        """Take one SMS confirmation from today's budget; False (and an alert) when spent."""
        day = now.astimezone(UTC).date().isoformat()
        if self.budget_open and self.throttle.hit(self.budget, day).allowed:
            return True
        if self.throttle.hit(self.budget_alert, day).allowed:
            # Once a day for the whole service: operators act on it, it is no flood.
            log.error("confirmation_budget_exhausted", day=day, budget=self.budget.amount)
        return False

    def _refused(self, reason: str, retry_after: int) -> Refusal:
        record_signup_refused(reason)
        log.info("signup_refused", reason=reason, retry_after=retry_after)
        return Refusal(reason, retry_after)


def guard_from_settings(settings: Settings) -> SignupGuard:
    """The guard of one app: shared through `STEADY_REDIS_URL` (else the broker)."""
    return SignupGuard(
        Throttle(settings.redis_url),
        settings.secret_key.get_secret_value(),
        per_client_per_hour=settings.signups_per_client_per_hour,
        per_prefix_per_hour=settings.signups_per_prefix_per_hour,
        confirmations_per_day=settings.confirmations_per_day,
    )
