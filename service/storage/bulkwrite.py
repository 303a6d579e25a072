"""Writing many rows at once: COPY on PostgreSQL, batched INSERTs elsewhere.

An ORM flush or a rendered multi-row INSERT costs more CPU per row than everything
else an import does; COPY streams the rows in the same transaction for a fraction of
it. COPY applies no Python-side column defaults, so `insert_rows` fills them in first,
and it returns no ids, so they are taken from the table's sequence beforehand.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, any_, bindparam, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session


class CopyRefused(SQLAlchemyError):
    """The database refused a COPY (a constraint, a lost connection): the driver's error,
    as SQLAlchemy's, so callers catch one kind of error whichever way rows went in."""


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def one_of(session: Session, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values` for thousands of values: one array parameter on PostgreSQL
    (`= ANY(%s)`) instead of thousands of parameters to render and parse."""
    if is_postgresql(session):
        return cast(
            "ColumnElement[bool]",
            column == any_(bindparam(None, list(values), type_=ARRAY(column.type))),
        )
    return cast("ColumnElement[bool]", column.in_(list(values)))


def with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every other column set as an ORM insert would set it."""
    full: dict[str, Any] = {}
    for column in table.columns:
        if column.key in row:
            full[column.key] = row[column.key]
        elif column.primary_key:
            continue
        elif column.default is not None and getattr(column.default, "is_scalar", False):
            full[column.key] = column.default.arg  # type: ignore[attr-defined]
        elif column.default is not None and getattr(column.default, "is_callable", False):
            full[column.key] = column.default.arg(None)  # type: ignore[attr-defined]
        else:
            full[column.key] = None
    return full


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert `rows` (every one with the same keys) into `table` in this transaction;
    their new ids, in order. Columns a row leaves out get their defaults."""
    if not rows:
        return []
    if not is_postgresql(session):
        # SQLite: one INSERT … RETURNING per batch of rows (SQLAlchemy's insertmanyvalues).
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [row_id for (row_id,) in session.execute(statement, list(rows))]
    keys = list(rows[0])
    if any(row.keys() != rows[0].keys() for row in rows):
        raise ValueError(f"insert_rows({table.name}): every row must have the same keys")
    # Defaults are the same for every row of the batch: worked out once, not per row.
    defaults = {key: value for key, value in with_defaults(table, {}).items() if key not in keys}
    tail = [_copy_value(value) for value in defaults.values()]
    ids = reserve_ids(session, table, len(rows))
    copy_rows(
        session,
        table,
        ["id", *keys, *defaults],
        (
            [row_id, *[_copy_value(row[key]) for key in keys], *tail]
            for row_id, row in zip(ids, rows, strict=True)
        ),
    )
    return ids


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` ids from the table's own sequence, as inserts would have taken them."""
    sequence = session.execute(
        text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
    ).scalar_one()
    return list(
        session.execute(
            text("SELECT nextval(:sequence) FROM generate_series(1, :count)"),
            {"sequence": sequence, "count": count},
        ).scalars()
    )


def copy_rows(
    session: Session, table: Table, columns: Sequence[str], values: Iterable[Sequence[Any]]
) -> None:
    """COPY rows of `values` (in the order of `columns`, ready for the driver) into
    `table` on PostgreSQL, in the session's transaction."""
    import psycopg

    driver: Any = session.connection().connection.driver_connection  # psycopg.Connection
    try:
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in values:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise CopyRefused(f"COPY {table.name}: {type(exc).__name__}") from exc


_PLAIN = (str, int, float, bool, type(None))


@lru_cache(maxsize=64)
def _naive_utc(value: datetime) -> datetime:
    """As UTCDateTime stores it. Cached: a batch's rows share a handful of times."""
    return value.astimezone(UTC).replace(tzinfo=None)


def _copy_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, str):
        return str(value)  # StrEnum members as their plain value
    return value
