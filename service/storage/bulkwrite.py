"""Writing many rows at once: COPY on PostgreSQL, batched INSERTs elsewhere.

An ORM flush or a rendered multi-row INSERT costs more CPU per row than everything
else an import does; COPY streams the rows in the same transaction for a fraction of
it. COPY applies no Python-side column defaults, so `insert_rows` fills them in first,
and it returns no ids, so when the caller needs them they are taken from the
table's sequence beforehand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from psycopg import postgres
from psycopg.adapt import Dumper
from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Table,
    Text,
    TypeDecorator,
    any_,
    bindparam,
    func,
    insert,
    text,
)
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
    (`= ANY(%s)`) instead of thousands of parameters to render and parse.

    Strings go as one text, split by the server (`string_to_array`): the driver
    checks each element of a text array for quoting in Python (0.6 µs for a phone
    number, 2 µs for a 64-digit hash), and a single string costs next to nothing.
    """
    if not is_postgresql(session):
        return cast("ColumnElement[bool]", column.in_(list(values)))
    if values and all(type(value) is str for value in values):
        joined = _LIST_SEPARATOR.join(values)
        # Only when no value holds the separator, and not for one empty string (the
        # server splits "" into no element at all).
        if joined and joined.count(_LIST_SEPARATOR) == len(values) - 1:
            split = func.string_to_array(bindparam(None, joined, type_=Text), _LIST_SEPARATOR)
            return cast("ColumnElement[bool]", column == any_(split))
    if values and all(type(value) is int for value in values):
        # Ids (every batch's reads): the array's text, joined in C; the driver's own
        # list dumper takes each element through Python (0.6 ms for 1,000 ids).
        array = IntArrayText("{" + ",".join(map(str, values)) + "}")
        return cast(
            "ColumnElement[bool]",
            column == any_(bindparam(None, array, type_=_PreDumpedArray(column.type))),
        )
    return cast(
        "ColumnElement[bool]",
        column == any_(bindparam(None, list(values), type_=ARRAY(column.type))),
    )


class IntArrayText(str):
    """A PostgreSQL integer array in its text form (``{1,2,3}``), sent as ``int8[]``
    (the statement casts it to the column's array type, as it does a list)."""


class _IntArrayTextDumper(Dumper):
    oid = postgres.types["int8"].array_oid

    def dump(self, obj: Any) -> bytes:
        return str(obj).encode()


postgres.adapters.register_dumper(IntArrayText, _IntArrayTextDumper)


class _PreDumpedArray(TypeDecorator[Any]):
    """An array parameter that reaches the driver as given (an `IntArrayText`): the
    array type's own bind step would copy it into a list, element by element."""

    impl = ARRAY
    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None


_LIST_SEPARATOR = "\n"  # in no address (validation refuses control characters) nor hash


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


def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    same: Mapping[str, Any] | None = None,
    *,
    ids: bool = True,
) -> list[int]:
    """Insert `rows` (values in the order of `columns`) into `table` in this transaction,
    each with the values of `same` too; their new ids, in order (none if `ids` is
    False: then the database numbers them itself). Columns named in neither get
    their defaults.

    What is the same for every row (`same`, the defaults) is converted for the
    driver once, and of each row only the columns whose type needs it (JSON, times):
    a batch of thousands of rows costs little more than the driver's own work.
    """
    if not rows:
        return []
    same = dict(same or {})
    if not is_postgresql(session):
        # SQLite: one INSERT … RETURNING per batch of rows (SQLAlchemy's insertmanyvalues).
        params = [{**dict(zip(columns, row, strict=True)), **same} for row in rows]
        if not ids:
            session.execute(insert(table), params)
            return []
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [row_id for (row_id,) in session.execute(statement, params)]
    named = {*columns, *same}
    defaults = {key: value for key, value in with_defaults(table, {}).items() if key not in named}
    tail = tuple(_copy_value(value) for value in (*same.values(), *defaults.values()))
    converters = [
        (position, converter)
        for position, name in enumerate(columns)
        if (converter := _converter(table.c[name])) is not None
    ]

    def ready(row: Sequence[Any]) -> tuple[Any, ...]:
        if converters:
            row = list(row)
            for position, converter in converters:
                row[position] = converter(row[position])
        return (*row, *tail)

    if not ids:  # the table's own default numbers them, as COPY applies server defaults
        copy_rows(session, table, [*columns, *same, *defaults], (ready(row) for row in rows))
        return []
    reserved = reserve_ids(session, table, len(rows))
    copy_rows(
        session,
        table,
        ["id", *columns, *same, *defaults],
        ((row_id, *ready(row)) for row_id, row in zip(reserved, rows, strict=True)),
    )
    return reserved


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` ids from the table's own sequence, as inserts would have taken them."""
    sequence = session.execute(
        text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
    ).scalar_one()
    driver: Any = session.connection().connection.driver_connection  # psycopg.Connection
    with driver.cursor() as cursor:  # the driver's own rows: thousands, fetched at C speed
        cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", (sequence, count))
        return [row_id for (row_id,) in cursor.fetchall()]


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
def _timestamp_text(value: datetime) -> str:
    """As UTCDateTime stores it, in the very text the driver would send for it. Cached:
    a batch's rows share a handful of times, and formatting one costs the driver more
    than the rest of a row."""
    from psycopg.adapt import PyFormat, Transformer

    naive = value.astimezone(UTC).replace(tzinfo=None)
    dumped = Transformer().get_dumper(naive, PyFormat.TEXT).dump(naive)
    assert dumped is not None  # a datetime always has a text form
    return bytes(dumped).decode()


def _copy_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return _timestamp_text(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, str):
        return str(value)  # StrEnum members as their plain value
    return value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _utc(value: datetime | None) -> str | None:
    return None if value is None else _timestamp_text(value)


def _converter(column: Any) -> Callable[[Any], Any] | None:
    """How a value of this column is made ready for COPY, if it needs anything."""
    kind = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
    if isinstance(kind, JSON):
        return _json
    if isinstance(kind, DateTime):
        return _utc
    if isinstance(column.type, TypeDecorator):
        return _copy_value  # its own Python values (a StrEnum): each as it comes
    return None
