"""Inbound texts: act on the reply grammar (INTERFACE.md §3) and answer in one SMS.

``service.replies.grammar`` reads a text into an ``Intent``; ``InboundHandler.handle``
applies it and returns the one reply, which the web layer sends back as TwiML
(never as a second API send). Every reply is logged as an outbound message
(``subscriptions.record_reply``: status sent, provider "twiml", priority 0), so
it never counts against cadence, caps or spacing (the planner counts nudges only).

Order of precedence:
    1. Crisis words (``service.replies.crisis``) beat every command: the subscriber is
       flagged, their nudges cancelled, and the reply carries the safety lines of
       their country for the kinds of danger found, and a pointer to local
       emergency services. A text that is also an opt-out stops SMS too, and that
       one reply is the STOP confirmation. Strangers, stopped numbers and flagged
       people get the safety reply as well: safety first.
    2. STOP and the opt-in keywords (YES, START, UNSTOP, JOIN), as carriers require;
       a stop asked in Spanish or French is confirmed in that language.
    3. HELP, from anyone we know, with the safety lines of their country.
    4. A pending number gets the opt-in request again; a stopped or suppressed one
       gets silence: nothing more by SMS until START (CTIA).
    5. Active subscribers: the commands of ``service.replies.commands`` (bursts of logs
       are explained there); any text counts as engagement. A text the grammar does
       not understand gets the short guide with the crisis line of their country, and
       stays listed for operator review (``service.people.review``).

Safety lines (``service.messages.safety_lines``): the person's country is their
number's; a country the operator's file does not name gets `STEADY_SAFETY_LINE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import phonenumbers
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.messages.catalog import CONFIRM_TEMPLATE, Kind
from service.messages.compose import CONSENT_BY_TEXT, renders_discreet, sms_context, with_carried
from service.messages.content import Content
from service.messages.safety_lines import LINE_KINDS, SafetyLines, country_of
from service.pacing.policy import pacing_policy
from service.people import do_not_contact, subscriptions
from service.people.abuse import (
    SignupGuard,
    guard_from_settings,
    number_country,
    sms_number_problem,
)
from service.people.review import CRISIS_FLAG_REASON
from service.people.zones.numbers import guess_for_number
from service.people.zones.subscriber import zone_question
from service.providers.base import InboundText
from service.replies.commands import Reply, SubscriberCommands, Turn
from service.replies.crisis import Assessment, CrisisDetector
from service.replies.grammar import Intent, interpret, normalise
from service.replies.grammar_rows import Command
from service.replies.learning import survey_open
from service.reporting.metrics import record_sms_confirmation_sent
from service.settings import Settings
from service.storage.models import Channel, ChannelStatus, InboundMessage, Subscriber

log = structlog.get_logger(__name__)

# Which safety lines each reply carries; crisis replies carry the kinds found.
GUIDE_LINE_KINDS = ("crisis",)
STOP_TEMPLATES = {None: "reply_stopped", "es": "reply_stopped_es", "fr": "reply_stopped_fr"}
CRISIS_STOP_TEMPLATES = {
    None: "reply_crisis_stopped",
    "es": "reply_crisis_stopped_es",
    "fr": "reply_crisis_stopped_fr",
}
HELP_TEMPLATES = {None: "reply_help", "es": "reply_help_es", "fr": "reply_help_fr"}


def _help(language: str | None = None) -> Reply:
    return Reply(HELP_TEMPLATES.get(language, "reply_help"), Kind.REPLY, "help")


def _stopped(language: str | None = None) -> Reply:
    return Reply(STOP_TEMPLATES.get(language, "reply_stopped"), Kind.REPLY, "stop")


def _crisis_stopped(language: str | None, context: Mapping[str, Any]) -> Reply:
    """The one STOP confirmation that also carries the safety lines, in the stop's language."""
    template = CRISIS_STOP_TEMPLATES.get(language, "reply_crisis_stopped")
    return Reply(template, Kind.REPLY, "crisis", None, context)


class InboundHandler:
    """Applies one inbound text to the database and returns the reply text, if any."""

    def __init__(
        self, settings: Settings, content: Content, signups: SignupGuard | None = None
    ) -> None:
        self.settings = settings
        # JOIN by text is a signup too: mobile numbers of allowed countries only, and
        # its confirmation spends the daily budget (service/people/abuse.py).
        self.signups = signups or guard_from_settings(settings)
        self.content = content
        self.hasher = AddressHasher(settings.secret_key)
        self.crisis = CrisisDetector.from_file(settings.crisis_words_file)
        self.safety_lines = SafetyLines.from_file(settings.safety_lines_file, settings.safety_line)
        self.policy = pacing_policy(settings)
        self.commands = SubscriberCommands(self.policy)

    def handle(self, session: Session, text: InboundText, now: datetime) -> str | None:
        intent = interpret(text.body)
        assessment = self.crisis.assess(text.body)
        crisis = assessment.is_crisis
        channel = session.scalar(
            select(Channel).where(Channel.kind == ChannelKind.SMS, Channel.address == text.sender)
        )
        inbound = InboundMessage(
            subscriber_id=channel.subscriber_id if channel else None,
            channel_id=channel.id if channel else None,
            provider_id=text.provider_id,
            body=text.body,
            command="crisis" if crisis else intent.command,
            received_at=now,
        )
        try:
            with session.begin_nested():
                session.add(inbound)
        except IntegrityError:
            # Twilio retried a webhook we already handled: the first answer stands.
            log.info("inbound_duplicate")
            return None
        log.info("inbound", command=intent.command, crisis=crisis, known=channel is not None)
        if channel is None:
            channel, reply = self._from_stranger(session, intent, assessment, text, now)
        elif crisis:
            reply = self._crisis(session, channel, intent, assessment, now)
        else:
            reply = self._from_subscriber(session, channel, intent, inbound, text, now)
        if reply is None:
            return None
        return self._render_and_log(session, channel, text.sender, reply, now)

    def _crisis_lines(self, sender: str, assessment: Assessment) -> dict[str, Any]:
        lines = self.safety_lines.lines(country_of(sender, None), assessment.line_kinds)
        return {"safety_lines": lines}

    # --- who is texting ---------------------------------------------------------------

    def _from_stranger(
        self,
        session: Session,
        intent: Intent,
        assessment: Assessment,
        text: InboundText,
        now: datetime,
    ) -> tuple[Channel | None, Reply | None]:
        command = intent.command
        if assessment.is_crisis:
            # Someone in danger may share a watched phone: neutral wording for strangers.
            lines = self._crisis_lines(text.sender, assessment)
            if command == Command.STOP:
                do_not_contact.suppress(
                    session, text.sender, ChannelKind.SMS, "stop", self.hasher, now
                )
                return None, _crisis_stopped(intent.language, {**_DISCREET, **lines})
            return None, Reply(
                "reply_crisis", Kind.REPLY, "crisis", None, {**_STRANGER_CRISIS, **lines}
            )
        if command in (Command.JOIN, Command.START):
            if not self._may_join(text.sender, now):
                return None, None
            if (
                do_not_contact.is_suppressed(session, text.sender, self.hasher)
                and command == Command.JOIN
            ):
                do_not_contact.unsuppress(session, text.sender, self.hasher)
            zone = guess_for_number(text.sender, self.settings.default_timezone, now)
            subscriber = Subscriber(
                timezone=zone.timezone,
                timezone_candidates=zone.stored_candidates,
                cadence_per_week=self.settings.default_cadence_per_week,
                created_at=now,
            )
            channel = Channel(
                kind=ChannelKind.SMS,
                address=text.sender,
                consent_at=now,
                consent_method=CONSENT_BY_TEXT,
                consent_evidence={"keyword": normalise(text.body), "message_sid": text.provider_id},
                created_at=now,
                updated_at=now,
            )
            subscriber.channels.append(channel)
            session.add(subscriber)
            session.flush()
            return channel, Reply(CONFIRM_TEMPLATE, Kind.CONFIRM, "double_opt_in")
        if command == Command.STOP:
            do_not_contact.suppress(session, text.sender, ChannelKind.SMS, "stop", self.hasher, now)
            return None, _stopped(intent.language)
        if command == Command.HELP:
            return None, _help(intent.language)
        return None, None

    def _may_join(self, sender: str, now: datetime) -> bool:
        """A stranger's JOIN gets an answer only from an allowed mobile, within the budget."""
        try:
            problem = sms_number_problem(sender, self.settings.sms_country_codes)
        except phonenumbers.NumberParseException:
            problem = "unreadable"
        if problem is not None:
            log.info("join_refused", reason="number_type")
            return False
        if not self.signups.spend_confirmation(now):
            log.info("join_refused", reason="confirmation_budget")
            return False
        record_sms_confirmation_sent(number_country(sender))
        return True

    def _crisis(
        self,
        session: Session,
        channel: Channel,
        intent: Intent,
        assessment: Assessment,
        now: datetime,
    ) -> Reply:
        """Flag for an operator and stop nudges; STOP in the same text stops SMS too."""
        subscriber = channel.subscriber
        if subscriber.flagged_at is None:
            subscriber.flagged_at = now
            subscriber.flag_reason = CRISIS_FLAG_REASON
        subscriber.next_plan_at = None
        # Flagged first, so this cancels without asking for a re-plan.
        subscriptions.cancel_pending_nudges(session, subscriber.id, now)
        log.warning(
            "subscriber_flagged",
            subscriber_id=subscriber.id,
            reason=CRISIS_FLAG_REASON,
            dangers=sorted(assessment.dangers),
        )
        lines = self._crisis_lines(channel.address, assessment)
        if intent.command == Command.STOP and channel.status != ChannelStatus.STOPPED:
            subscriptions.stop(session, channel, "stop", self.hasher, now)
            return _crisis_stopped(intent.language, lines)
        return Reply("reply_crisis", Kind.REPLY, "crisis", None, lines)

    def _from_subscriber(
        self,
        session: Session,
        channel: Channel,
        intent: Intent,
        inbound: InboundMessage,
        text: InboundText,
        now: datetime,
    ) -> Reply | None:
        command = intent.command
        evidence = {"keyword": normalise(text.body), "message_sid": text.provider_id}
        if (
            command == Command.CONFIRM
            and channel.status == ChannelStatus.ACTIVE
            and survey_open(session, channel.subscriber_id, now)
        ):
            # A YES while the daily question is open answers it (service.replies.learning).
            intent, command = Intent(Command.SURVEY_YES), Command.SURVEY_YES
        if command == Command.STOP:
            already = channel.status == ChannelStatus.STOPPED
            subscriptions.stop(session, channel, "stop", self.hasher, now)
            # Exactly one confirmation: a second STOP gets silence.
            return None if already else _stopped(intent.language)
        if command in (Command.CONFIRM, Command.START, Command.JOIN):
            if channel.status == ChannelStatus.PENDING:
                if command == Command.JOIN:
                    return Reply(CONFIRM_TEMPLATE, Kind.CONFIRM, "double_opt_in")
                subscriptions.confirm(session, channel, evidence, now)
                # The one message that asks for a zone when the number leaves it uncertain.
                ask = zone_question(channel.subscriber, now, self.policy)
                return Reply("reply_confirmed", Kind.REPLY, "confirmed", None, ask)
            if channel.status in (ChannelStatus.STOPPED, ChannelStatus.SUPPRESSED):
                subscriptions.resume(session, channel, self.hasher, evidence, now)
                return Reply("reply_resumed", Kind.REPLY, "resumed")
            return Reply("reply_confirmed", Kind.REPLY, "already_active")
        if command == Command.HELP:
            return _help(intent.language)
        if channel.status == ChannelStatus.PENDING:
            # Not confirmed yet: nothing is logged; ask for the YES again.
            return Reply(CONFIRM_TEMPLATE, Kind.CONFIRM, "double_opt_in")
        if channel.status != ChannelStatus.ACTIVE:
            return None  # nothing more by SMS until START (CTIA); HELP answered above
        channel.subscriber.last_engaged_at = now
        return self.commands.run(Turn(session, channel.subscriber, intent, inbound.id, now))

    def _render_and_log(
        self, session: Session, channel: Channel | None, sender: str, reply: Reply, now: datetime
    ) -> str:
        subscriber = channel.subscriber if channel is not None else None
        discreet = renders_discreet(
            reply.kind,
            subscriber is not None and subscriber.discreet,
            channel.consent_method if channel is not None else None,
        )
        context = sms_context(
            self.settings,
            discreet=discreet,
            cadence_per_week=(
                subscriber.cadence_per_week
                if subscriber is not None
                else self.settings.default_cadence_per_week
            ),
        )
        context["safety_lines"] = self._lines_for(reply.template, sender)
        context.update(reply.context)
        body = self.content.sms(reply.template, context)
        template = reply.template
        if reply.carried is not None:
            # The confirmation already asked for nothing more: the carried text need not.
            carried = self.content.sms(reply.carried, {**context, "carried": True})
            body = with_carried(body, carried, context["program"])
            template = reply.carried  # so the next choice sees which variant went
        if channel is not None:
            subscriptions.record_reply(
                session,
                channel,
                kind=reply.kind,
                template=template,
                rule=reply.rule,
                body=body,
                now=now,
            )
        return body

    def _lines_for(self, template: str, sender: str) -> list[str]:
        """The safety lines a reply carries: HELP all of the country's, the guide its
        crisis line; crisis replies bring their own (the kinds of danger found)."""
        country = country_of(sender, None)
        if template in HELP_TEMPLATES.values():
            return self.safety_lines.lines(country, LINE_KINDS)
        if template == "reply_guide":
            return self.safety_lines.lines(country, GUIDE_LINE_KINDS)
        return []


_DISCREET: Mapping[str, Any] = {"discreet": True}
_STRANGER_CRISIS: Mapping[str, Any] = {"discreet": True, "subscribed": False}
