"""Inbound texts: parse the reply grammar and act on it (INTERFACE.md §3).

The parser is a table: each command lists the words that mean it. Opt-out is
matched generously (FCC 2025: "any reasonable means"), so plain requests such as
"Stop. Thank you" or "please stop texting me" stop at once. The handler returns
the text of the one reply, which the web layer sends back as TwiML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import subscriptions
from service.addresses import infer_timezone
from service.catalog import CONFIRM_TEMPLATE, Kind
from service.compose import sms_context
from service.content import Content
from service.models import Channel, ChannelKind, ChannelStatus, InboundMessage, Subscriber
from service.settings import Settings

log = structlog.get_logger(__name__)


class Command(StrEnum):
    JOIN = "join"
    CONFIRM = "confirm"  # YES
    START = "start"  # START / UNSTOP
    STOP = "stop"
    HELP = "help"
    UNKNOWN = "unknown"


# Whole-message keywords, after case folding and stripping punctuation (CTIA and
# Twilio's standard opt-out/opt-in/help sets).
KEYWORDS: dict[Command, frozenset[str]] = {
    Command.STOP: frozenset(
        {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "opt out"}
    ),
    Command.START: frozenset({"start", "unstop"}),
    Command.CONFIRM: frozenset({"yes", "y"}),
    Command.JOIN: frozenset({"join", "subscribe"}),
    Command.HELP: frozenset({"help", "info"}),
}

# Plain-words opt-out: a STOP word leading the message ("Stop. Thank you",
# "stop please", "Unsubscribe me"), or a request to stop texting anywhere in it.
OPT_OUT_PATTERNS = (
    re.compile(r"^(stop|stopall|unsubscribe|cancel|end|quit|revoke|optout|opt out)\b"),
    re.compile(
        r"\b(stop|quit|cease|don'?t|do not|no more)\b.{0,20}"
        r"\b(text|texting|message|messaging|messages|contact|contacting|sms)\b"
    ),
    re.compile(r"\b(opt me out|opt out|unsubscribe me|remove me|take me off)\b"),
)


def normalise(text: str) -> str:
    """Lower case, punctuation and emoji to spaces, single spaces."""
    cleaned = re.sub(r"[^\w\s']+", " ", text.casefold())
    return " ".join(cleaned.split())


def parse(text: str) -> Command:
    """The command a text means."""
    words = normalise(text)
    for command, keywords in KEYWORDS.items():
        if words in keywords:
            return command
    if any(pattern.search(words) for pattern in OPT_OUT_PATTERNS):
        return Command.STOP
    return Command.UNKNOWN


@dataclass(frozen=True)
class InboundText:
    provider_id: str | None  # Twilio MessageSid
    sender: str  # E.164
    body: str


@dataclass(frozen=True)
class Reply:
    template: str
    kind: Kind
    rule: str


class InboundHandler:
    """Applies one inbound text to the database and returns the reply text, if any."""

    def __init__(self, settings: Settings, content: Content) -> None:
        self.settings = settings
        self.content = content
        self.secret = settings.secret_key.get_secret_value()

    def handle(self, session: Session, text: InboundText, now: datetime) -> str | None:
        command = parse(text.body)
        channel = session.scalar(
            select(Channel).where(Channel.kind == ChannelKind.SMS, Channel.address == text.sender)
        )
        inbound = InboundMessage(
            subscriber_id=channel.subscriber_id if channel else None,
            channel_id=channel.id if channel else None,
            provider_id=text.provider_id,
            body=text.body,
            command=command,
            received_at=now,
        )
        try:
            with session.begin_nested():
                session.add(inbound)
        except IntegrityError:
            # Twilio retried a webhook we already handled: the first answer stands.
            log.info("inbound_duplicate")
            return None
        log.info("inbound", command=command, known=channel is not None)
        if channel is None:
            channel, reply = self._from_stranger(session, command, text, now)
        else:
            reply = self._from_subscriber(session, channel, command, text, now)
        if reply is None:
            return None
        return self._render_and_log(session, channel, reply, now)

    def _from_stranger(
        self, session: Session, command: Command, text: InboundText, now: datetime
    ) -> tuple[Channel | None, Reply | None]:
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
            return None, Reply("reply_help", Kind.REPLY, "help")
        return None, None

    def _from_subscriber(
        self, session: Session, channel: Channel, command: Command, text: InboundText, now: datetime
    ) -> Reply | None:
        evidence = {"keyword": normalise(text.body), "message_sid": text.provider_id}
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
        if channel.status == ChannelStatus.STOPPED:
            # Nothing more by SMS until START (CTIA); HELP is the one exception.
            return Reply("reply_help", Kind.REPLY, "help") if command == Command.HELP else None
        if command == Command.HELP:
            return Reply("reply_help", Kind.REPLY, "help")
        return Reply("reply_guide", Kind.REPLY, "guide")

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
        body = self.content.sms(reply.template, context)
        if channel is not None:
            subscriptions.record_reply(
                session,
                channel,
                kind=reply.kind,
                template=reply.template,
                rule=reply.rule,
                body=body,
                now=now,
            )
        return body
