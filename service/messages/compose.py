"""Compose: turn a message row and what we know of its person into provider input.

The template context is the same for every kind (the content contract in
`service.messages.content`), so a template can never ask for a variable that a send
path forgot to give it; StrictUndefined turns any slip into an error, not a
blank in a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.channels import ChannelKind
from service.messages.catalog import Kind
from service.messages.content import Content
from service.providers.base import OutboundMessage
from service.providers.twilio.codes import MESSAGE_ID_QUERY
from service.settings import Settings
from service.tokens import Purpose, make_token

PROGRAM_NAME = "Steady"
# Discreet mode: a lock screen or an inbox list shows only the sender, so it says nothing.
DISCREET_SENDER_NAME = "Daily notes"
POSTAL_ADDRESS_UNSET = "(postal address not configured)"
# How a channel's consent was given when the person texted JOIN from that phone.
CONSENT_BY_TEXT = "sms_keyword"


@dataclass(frozen=True)
class Recipient:
    """What composing needs of a person: no more."""

    message_id: int
    channel_id: int
    channel: ChannelKind
    address: str
    discreet: bool
    cadence_per_week: int


def renders_discreet(kind: str, chosen: bool, consent_method: str | None) -> bool:
    """Whether a message to a channel is written in discreet wording.

    The person's own choice, and always for a confirmation the phone or inbox did
    not ask for itself (PRODUCT.md, "Safety"): a web signup's, an import's or the
    preferences page's confirmation goes to whatever address was typed in, and
    whoever holds it may not be the person who typed it, so the whole text says
    nothing of what Steady is about. Only the opt-in request answering a JOIN
    texted from the phone itself may be plain. The dispatcher, reconciliation
    (which matches the provider's copy by its body) and the replies all ask here.
    """
    return chosen or (kind == Kind.CONFIRM and consent_method != CONSENT_BY_TEXT)


# How often, in the words of each language a reply is written in: (per day, per week).
_FREQUENCY_WORDS = {
    "en": ("up to {n} msg{s}/day", "up to {n} msgs/week"),
    "es": ("hasta {n} mensaje{s} al día", "hasta {n} mensajes por semana"),
    "fr": ("jusqu'à {n} message{s} par jour", "jusqu'à {n} messages par semaine"),
}


def frequency_text(cadence_per_week: int, language: str = "en") -> str:
    """The frequency as carriers want it stated: 'up to 1 msg/day', 'up to 3 msgs/week'
    (or 'hasta 3 mensajes por semana', 'jusqu'à 3 messages par semaine')."""
    per_day_words, per_week_words = _FREQUENCY_WORDS[language]
    if cadence_per_week % 7 == 0:
        per_day = cadence_per_week // 7
        return per_day_words.format(n=per_day, s="s" if per_day > 1 else "")
    return per_week_words.format(n=cadence_per_week)


def sms_context(settings: Settings, *, discreet: bool, cadence_per_week: int) -> dict[str, Any]:
    """What every template may use; SMS templates use nothing more."""
    return {
        "program": PROGRAM_NAME,
        "discreet": discreet,
        "support_contact": settings.support_contact,
        # The fallback line; replies put the person's own country's lines here.
        "safety_lines": [settings.safety_line] if settings.safety_line else [],
        "frequency": frequency_text(cadence_per_week),
        "frequency_es": frequency_text(cadence_per_week, "es"),
        "frequency_fr": frequency_text(cadence_per_week, "fr"),
        # The opt-in and HELP say that Steady varies its messages (PRODUCT.md).
        "experiment": settings.experiment == "on",
    }


# A restraint or tip carried on a confirmation loses its own opening: the confirmation
# already names the sender and says it was noted.
_CARRIED_OPENINGS = ("{program}: ", "Noted. ")


def with_carried(confirmation: str, carried: str, program: str = PROGRAM_NAME) -> str:
    """One SMS: a log's confirmation, then the restraint or tip it carries."""
    for opening in _CARRIED_OPENINGS:
        prefix = opening.format(program=program)
        if carried.startswith(prefix):
            rest = carried[len(prefix) :]
            carried = rest[:1].upper() + rest[1:]
            break
    return f"{confirmation} {carried}"


def template_context(settings: Settings, recipient: Recipient) -> dict[str, Any]:
    """The full context: the SMS variables plus the links and footer email needs."""
    secret = settings.secret_key.get_secret_value()
    base = settings.public_url
    preferences = make_token(secret, Purpose.PREFERENCES, recipient.channel_id)
    confirm = make_token(secret, Purpose.CONFIRM, recipient.channel_id)
    return {
        **sms_context(
            settings, discreet=recipient.discreet, cadence_per_week=recipient.cadence_per_week
        ),
        "postal_address": settings.postal_address or POSTAL_ADDRESS_UNSET,
        "unsubscribe_url": unsubscribe_url(settings, recipient.channel_id),
        "preferences_url": f"{base}/preferences/{preferences}",
        "confirm_url": f"{base}/confirm/{confirm}",
    }


def unsubscribe_url(settings: Settings, channel_id: int) -> str:
    token = make_token(settings.secret_key.get_secret_value(), Purpose.UNSUBSCRIBE, channel_id)
    return f"{settings.public_url}/u/{token}"


def status_callback_url(settings: Settings, message_id: int) -> str:
    # Our id rides along, so a callback that beats our own commit of the provider
    # id still finds its message.
    return f"{settings.public_url}/webhooks/twilio/status?{MESSAGE_ID_QUERY}={message_id}"


def compose(
    settings: Settings,
    content: Content,
    recipient: Recipient,
    template: str,
    body: str | None = None,
) -> OutboundMessage:
    """Render `template` for `recipient` into a message a provider can send.

    An SMS whose `body` was rendered when it was queued (an operator's reply) goes
    as it is: what the operator saw is what the person gets.
    """
    if recipient.channel == ChannelKind.SMS:
        context = sms_context(
            settings, discreet=recipient.discreet, cadence_per_week=recipient.cadence_per_week
        )
        return OutboundMessage(
            message_id=recipient.message_id,
            channel=ChannelKind.SMS,
            to=recipient.address,
            body=body if body is not None else content.sms(template, context),
            status_callback=status_callback_url(settings, recipient.message_id),
        )
    context = template_context(settings, recipient)
    email = content.email(template, context)
    return OutboundMessage(
        message_id=recipient.message_id,
        channel=ChannelKind.EMAIL,
        to=recipient.address,
        body=email.text,
        subject=email.subject,
        html=email.html,
        unsubscribe_url=context["unsubscribe_url"],
        sender_name=DISCREET_SENDER_NAME if recipient.discreet else PROGRAM_NAME,
    )
