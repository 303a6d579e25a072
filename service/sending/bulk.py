"""Writing a planner batch: its messages and its decision-log rows, in bulk.

PostgreSQL gets COPY (binding and rendering a 1,000-row INSERT cost the planner more
CPU than pacing itself, docs/performance.md); the messages' ids are taken from their
sequence first, in one query, so each decision row can name its message. SQLite gets
one executemany INSERT ... RETURNING (ids in the order of the rows). Timestamps go into
COPY as naive UTC, as `UTCDateTime` stores them; JSON as its text. Both row shapes are
known here (``message_row``, ``decision_row``), so each row goes to the driver as one
tuple in column order, and what many rows share (the batch's times, its few option
sets) is converted once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from service.messages.lifecycle import PRIORITY_NUDGE
from service.pacing.experiment import Decision
from service.pacing.rules import PlannedNudge
from service.storage.bulkwrite import copy_rows, is_postgresql, reserve_ids
from service.storage.models import Message, MessageStatus
from service.storage.models_records import Decision as DecisionRow

MESSAGES = cast(Table, Message.__table__)
DECISIONS = cast(Table, DecisionRow.__table__)
MESSAGE_COLUMNS = (
    "subscriber_id",
    "channel_id",
    "channel",
    "kind",
    "template",
    "rule",
    "priority",
    "status",
    "scheduled_for",
    "expires_at",
    "attempts",
    "created_at",
    "updated_at",
)
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


class _NaiveUTC(dict[datetime, datetime]):
    """Aware times as `UTCDateTime` stores them (naive UTC), each converted once."""

    def __missing__(self, at: datetime) -> datetime:
        naive = self[at] = at.astimezone(UTC).replace(tzinfo=None)
        return naive


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert a batch's new messages (``message_row`` dicts); their ids, in order."""
    if not rows:
        return []
    if not is_postgresql(session):
        statement = insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True)
        return [int(i) for i in session.execute(statement, rows).scalars()]
    ids = [int(i) for i in reserve_ids(session, MESSAGES, len(rows))]
    naive = _NaiveUTC()
    copy_rows(
        session,
        MESSAGES,
        ("id", *MESSAGE_COLUMNS),
        (
            (
                message_id,
                row["subscriber_id"],
                row["channel_id"],
                str(row["channel"]),
                row["kind"],
                row["template"],
                row["rule"],
                row["priority"],
                str(row["status"]),
                naive[row["scheduled_for"]],
                naive[row["expires_at"]],
                row["attempts"],
                naive[row["created_at"]],
                naive[row["updated_at"]],
            )
            for message_id, row in zip(ids, rows, strict=True)
        ),
    )
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
    if not is_postgresql(session):
        session.execute(insert(DECISIONS), list(rows))
        return
    # Rows of a batch share a few option sets and times: their COPY text is made once.
    texts: dict[Any, str] = {}
    naive = _NaiveUTC()

    def as_json(value: Any, key: Any) -> str:
        found = texts.get(key)
        if found is None:
            found = texts[key] = json.dumps(value, separators=(",", ":"))
        return found

    copy_rows(
        session,
        DECISIONS,
        DECISION_COLUMNS,
        (
            (
                naive[row["at"]],
                row["subscriber_id"],
                row["available"],
                row["unavailable_reason"],
                as_json(row["options"], tuple(row["options"])),
                as_json(row["probabilities"], tuple(row["probabilities"].items())),
                row["chosen"],
                row["policy"],
                row["message_id"],
                row["draw"],
            )
            for row in rows
        ),
    )
