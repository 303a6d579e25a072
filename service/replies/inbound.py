"""Inbound texts: act on the reply grammar (INTERFACE.md §3) and answer in one SMS.

``service.replies.grammar`` reads a text into an ``Intent``; ``InboundHandler.handle``
applies it and returns the one reply, which the web layer sends back as TwiML
(never as a second API send). Every reply is logged as an outbound message
(``subscriptions.record_reply``: status sent, provider "twiml", priority 0), so
it never counts against cadence, caps or spacing (the planner counts nudges only).

Order of precedence:
    1. Crisis words (``service.replies.crisis``) beat every command: the subscriber is
       flagged, their nudges cancelled, and the reply carries the safety line and
       a pointer to emergency services. A text that is also an opt-out stops SMS
       too, and that one reply is the STOP confirmation. Strangers, stopped
       numbers and flagged people get the safety reply as well: safety first.
    2. STOP and the opt-in keywords (YES, START, UNSTOP, JOIN), as carriers require.
    3. HELP, from anyone we know.
    4. A pending number gets the opt-in request again; a stopped or suppressed one
       gets silence: nothing more by SMS until START (CTIA).
    5. Active subscribers: the commands of ``service.replies.commands`` (bursts of logs
       are explained there); any text counts as engagement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.addresses import infer_timezone
from service.messages.catalog import CONFIRM_TEMPLATE, Kind
from service.messages.compose import sms_context
from service.messages.content import Content
from service.pacing.policy import pacing_policy
from service.people import subscriptions
from service.replies.commands import Reply, SubscriberCommands, Turn
from service.replies.crisis import CrisisWords
from service.replies.grammar import Command, Intent, interpret, normalise, parse
from service.replies.learning import survey_open
from service.settings import Settings
from service.storage.models import Channel, ChannelKind, ChannelStatus, InboundMessage, Subscriber

__all__ = ["Command", "InboundHandler", "InboundText", "Intent", "Reply", "interpret", "parse"]

log = structlog.get_logger(__name__)

CRISIS_FLAG_REASON = "crisis_words"


@dataclass(frozen=True)
class InboundText:
    provider_id: str | None  # Twilio MessageSid
    sender: str  # E.164
    body: str


def _help() -> Reply:
    return Reply("reply_help", Kind.REPLY, "help")


class InboundHandler:
    """Applies one inbound text to the database and returns the reply text, if any."""

    def __init__(self, settings: Settings, content: Content) -> None:
        self.settings = settings
        self.content = content
        self.secret = settings.secret_key.get_secret_value()
        self.crisis_words = CrisisWords.from_file(settings.crisis_words_file)
        self.commands = SubscriberCommands(pacing_policy(settings))

    def handle(self, session: Session, text: InboundText, now: datetime) -> str | None:
        intent = interpret(text.body)
        crisis = self.crisis_words.found_in(text.body)
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
            channel, reply = self._from_stranger(session, intent.command, crisis, text, now)
        elif crisis:
            reply = self._crisis(session, channel, intent.command, now)
        else:
            reply = self._from_subscriber(session, channel, intent, inbound, text, now)
        if reply is None:
            return None
        return self._render_and_log(session, channel, reply, now)

    # --- who is texting ---------------------------------------------------------------

    def _from_stranger(
        self, session: Session, command: Command, crisis: bool, text: InboundText, now: datetime
    ) -> tuple[Channel | None, Reply | None]:
        if crisis:
            # Someone in danger may share a watched phone: neutral wording for strangers.
            if command == Command.STOP:
                subscriptions.suppress(session, text.sender, "sms", "stop", self.secret, now)
                return None, Reply("reply_crisis_stopped", Kind.REPLY, "crisis", None, _DISCREET)
            return None, Reply("reply_crisis", Kind.REPLY, "crisis", None, _STRANGER_CRISIS)
        if command in (Command.JOIN, Command.START):
            if (
                subscriptions.is_suppressed(session, text.sender, self.secret)
                and command == Command.JOIN
            ):
                subscriptions.unsuppress(session, text.sender, self.secret)
            subscriber = Subscriber(
                timezone=infer_timezone(text.sender) or self.settings.default_timezone,
                cadence_per_week=self.settings.default_cadence_per_week,
                created_at=now,
            )
            channel = Channel(
                kind=ChannelKind.SMS,
                address=text.sender,
                consent_at=now,
                consent_method="sms_keyword",
                consent_evidence={"keyword": normalise(text.body), "message_sid": text.provider_id},
                created_at=now,
                updated_at=now,
            )
            subscriber.channels.append(channel)
            session.add(subscriber)
            session.flush()
            return channel, Reply(CONFIRM_TEMPLATE, Kind.CONFIRM, "double_opt_in")
        if command == Command.STOP:
            subscriptions.suppress(session, text.sender, "sms", "stop", self.secret, now)
            return None, Reply("reply_stopped", Kind.REPLY, "stop")
        if command == Command.HELP:
            return None, _help()
        return None, None

    def _crisis(self, session: Session, channel: Channel, command: Command, now: datetime) -> Reply:
        """Flag for an operator and stop nudges; STOP in the same text stops SMS too."""
        subscriber = channel.subscriber
        if subscriber.flagged_at is None:
            subscriber.flagged_at = now
            subscriber.flag_reason = CRISIS_FLAG_REASON
        subscriber.next_plan_at = None
        # Flagged first, so this cancels without asking for a re-plan.
        subscriptions.cancel_pending_nudges(session, subscriber.id, now)
        log.warning("subscriber_flagged", subscriber_id=subscriber.id, reason=CRISIS_FLAG_REASON)
        if command == Command.STOP and channel.status != ChannelStatus.STOPPED:
            subscriptions.stop(session, channel, "stop", self.secret, now)
            return Reply("reply_crisis_stopped", Kind.REPLY, "crisis")
        return Reply("reply_crisis", Kind.REPLY, "crisis")

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
            subscriptions.stop(session, channel, "stop", self.secret, now)
            # Exactly one confirmation: a second STOP gets silence.
            return None if already else Reply("reply_stopped", Kind.REPLY, "stop")
        if command in (Command.CONFIRM, Command.START, Command.JOIN):
            if channel.status == ChannelStatus.PENDING:
                if command == Command.JOIN:
                    return Reply(CONFIRM_TEMPLATE, Kind.CONFIRM, "double_opt_in")
                subscriptions.confirm(session, channel, evidence, now)
                return Reply("reply_confirmed", Kind.REPLY, "confirmed")
            if channel.status in (ChannelStatus.STOPPED, ChannelStatus.SUPPRESSED):
                subscriptions.resume(session, channel, self.secret, evidence, now)
                return Reply("reply_resumed", Kind.REPLY, "resumed")
            return Reply("reply_confirmed", Kind.REPLY, "already_active")
        if command == Command.HELP:
            return _help()
        if channel.status == ChannelStatus.PENDING:
            # Not confirmed yet: nothing is logged; ask for the YES again.
            return Reply(CONFIRM_TEMPLATE, Kind.CONFIRM, "double_opt_in")
        if channel.status != ChannelStatus.ACTIVE:
            return None  # nothing more by SMS until START (CTIA); HELP answered above
        channel.subscriber.last_engaged_at = now
        return self.commands.run(Turn(session, channel.subscriber, intent, inbound.id, now))

    def _render_and_log(
        self, session: Session, channel: Channel | None, reply: Reply, now: datetime
    ) -> str:
        subscriber = channel.subscriber if channel is not None else None
        context = sms_context(
            self.settings,
            discreet=subscriber.discreet if subscriber is not None else False,
            cadence_per_week=(
                subscriber.cadence_per_week
                if subscriber is not None
                else self.settings.default_cadence_per_week
            ),
        )
        context.update(reply.context)
        body = self.content.sms(reply.template, context)
        template = reply.template
        if reply.carried is not None:
            carried = self.content.sms(reply.carried, context)
            body = f"{body} {_without_opening(carried, context['program'])}"
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


_DISCREET: Mapping[str, Any] = {"discreet": True}
_STRANGER_CRISIS: Mapping[str, Any] = {"discreet": True, "subscribed": False}
# The confirmation already names the sender and says it was noted.
_CARRIED_OPENINGS = ("{program}: ", "Noted. ")


def _without_opening(text: str, program: str) -> str:
    for opening in _CARRIED_OPENINGS:
        prefix = opening.format(program=program)
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            return rest[:1].upper() + rest[1:]
    return text
