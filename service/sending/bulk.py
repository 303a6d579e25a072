"""Writing a planner batch: its messages and its decision-log rows, in bulk.

PostgreSQL gets COPY (binding and rendering a 1,000-row INSERT cost the planner more
CPU than pacing itself, docs/performance.md); the messages' ids are taken from their
sequence first, in one query, so each decision row can name its message. SQLite gets
one executemany INSERT ... RETURNING (ids in the order of the rows). Timestamps go into
COPY as naive UTC, as `UTCDateTime` stores them; JSON as its text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session

from service.messages.lifecycle import PRIORITY_NUDGE
from service.pacing.experiment import Decision
from service.pacing.rules import PlannedNudge
from service.storage.models import Message, MessageStatus
from service.storage.models_records import Decision as DecisionRow

DECISION_COLUMNS = (
    "at",
    "subscriber_id",
    "available",
    "unavailable_reason",
    "options",
    "probabilities",
    "chosen",
    "policy",
    "message_id",
    "draw",
)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert a batch's new messages; their ids, in the order of ``rows``."""
    if not rows:
        return []
    if not _postgres(session):
        statement = insert(cast(Table, Message.__table__)).returning(
            Message.__table__.c.id, sort_by_parameter_order=True
        )
        return [int(i) for i in session.execute(statement, rows).scalars()]
    ids = [
        int(i)
        for i in session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence('messages', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": len(rows)},
        )
    ]
    copy_rows(session, "messages", [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
    return ids


def message_row(
    subscriber_id: int, channel: tuple[int, str, Any], plan: PlannedNudge, now: datetime
) -> dict[str, Any]:
    """A planned nudge's row for ``insert_messages``; ``channel`` is (id, kind, ...)."""
    return {
        "subscriber_id": subscriber_id,
        "channel_id": channel[0],
        "channel": channel[1],
        "kind": str(plan.kind),
        "template": plan.template,
        "rule": plan.rule,
        "priority": PRIORITY_NUDGE,
        "status": MessageStatus.SCHEDULED,
        "scheduled_for": plan.scheduled_for,
        "expires_at": plan.expires_at,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def decision_row(
    subscriber_id: int, decision: Decision, message_id: int | None = None
) -> dict[str, Any]:
    return {
        "at": decision.at,
        "subscriber_id": subscriber_id,
        "available": decision.available,
        "unavailable_reason": decision.reason,
        "options": list(decision.options),
        "probabilities": decision.probability_map(),
        "chosen": decision.chosen,
        "policy": decision.policy,
        "message_id": message_id,
        "draw": decision.draw,
    }


def insert_decisions(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append decision rows (``decision_row`` dicts with ``message_id`` filled in)."""
    if not rows:
        return
    if not _postgres(session):
        session.execute(insert(cast(Table, DecisionRow.__table__)), list(rows))
        return
    # Rows of a batch share a few option sets and times: their COPY text is made once.
    texts: dict[Any, str] = {}
    times: dict[datetime, datetime] = {}

    def as_json(value: Any, key: Any) -> str:
        found = texts.get(key)
        if found is None:
            found = texts[key] = json.dumps(value, separators=(",", ":"))
        return found

    driver: Any = session.connection().connection.driver_connection  # psycopg.Connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY decisions ({', '.join(DECISION_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            at = row["at"]
            naive = times.get(at)
            if naive is None:
                naive = times[at] = at.astimezone(UTC).replace(tzinfo=None)
            options, probabilities = row["options"], row["probabilities"]
            copy.write_row(
                (
                    naive,
                    row["subscriber_id"],
                    row["available"],
                    row["unavailable_reason"],
                    as_json(options, tuple(options)),
                    as_json(probabilities, tuple(probabilities.items())),
                    row["chosen"],
                    row["policy"],
                    row["message_id"],
                    row["draw"],
                )
            )


def copy_rows(
    session: Session,
    table: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | None = None,
) -> None:
    """COPY rows of dicts into ``table`` (PostgreSQL), in this session's transaction."""
    names = list(columns or rows[0])
    driver: Any = session.connection().connection.driver_connection  # psycopg.Connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([_copy_value(row[name]) for name in names])


def _copy_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, str):
        return str(value)  # StrEnum members as their plain value
    return value
