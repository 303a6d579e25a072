"""The naive baseline `steady bench` compares against: the typical Celery app.

One task per message, sent to the broker when the message is due; each task
loads its row (one query, with the address and the person's settings), renders
it, sends it with the same SDK client Steady uses and commits the result on its
own. This is the design PERFORMANCE.md measured at 440–510 messages/s, and the
one Steady's batched dispatcher is built to beat.

Tuned as a competent developer would, so the ratio is honest: a prefork pool of
one process per core (`steady bench` starts it so), the Celery docs' advice for
many short tasks (a large prefetch multiplier: "say 64, or 128", Optimizing →
Prefetch Limits), acknowledgement on receipt (Celery's default; an SMS is
at-most-once anyway), no `eta` for messages already due, no result backend.
It is here only to be measured: Steady never runs it.

Run as a worker with `celery -A service.devtools.bench.naive worker`; settings come
from the environment like every Steady process.
"""

from __future__ import annotations

from functools import cache

from celery import Celery
from sqlalchemy import select

from service.channels import ChannelKind
from service.messages.compose import Recipient, compose
from service.messages.content import Content
from service.providers.base import Provider, ProviderError
from service.providers.twilio.sms import TwilioSmsProvider
from service.settings import Settings, get_settings
from service.storage.db import session_factory
from service.storage.models import Channel, Message, MessageStatus, Subscriber, utcnow

NAIVE_SEND_TASK = "steady_bench.naive_send"
NAIVE_QUEUE = "steady-bench-naive"
NAIVE_PREFETCH = 64


def make_naive_celery(settings: Settings) -> Celery:
    app = Celery("steady_bench_naive", broker=settings.broker_url or "memory://")
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        worker_prefetch_multiplier=NAIVE_PREFETCH,
        task_default_queue=NAIVE_QUEUE,
        broker_connection_retry_on_startup=True,
    )
    return app


app = make_naive_celery(get_settings())


@cache
def _parts() -> tuple[Settings, Provider, Content]:
    settings = get_settings()
    return settings, TwilioSmsProvider.from_settings(settings), Content()


@app.task(name=NAIVE_SEND_TASK)
def naive_send(message_id: int) -> str:
    settings, provider, content = _parts()
    with session_factory(settings.database_url)() as session:
        # One round trip for the row and what composing needs (as lean as this design gets).
        row = session.execute(
            select(Message, Channel.address, Subscriber.discreet, Subscriber.cadence_per_week)
            .join(Channel, Channel.id == Message.channel_id)
            .join(Subscriber, Subscriber.id == Message.subscriber_id)
            .where(Message.id == message_id)
        ).first()
        if row is None or row.Message.status != MessageStatus.SCHEDULED:
            return "skipped"
        message = row.Message
        outbound = compose(
            settings,
            content,
            Recipient(
                message_id=message.id,
                channel_id=message.channel_id or 0,
                channel=ChannelKind.SMS,
                address=row.address,
                discreet=row.discreet,
                cadence_per_week=row.cadence_per_week,
            ),
            message.template,
        )
        try:
            message.provider_id = provider.send(outbound)
            message.status = MessageStatus.SENT
            message.sent_at = utcnow()
        except ProviderError as exc:
            message.status = MessageStatus.FAILED
            message.error_code = exc.code
        session.commit()
        return str(message.status)
