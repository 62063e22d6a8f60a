"""Bulk statements that stay fast at tens of thousands of rows.

On PostgreSQL with psycopg, SQLAlchemy's multi-row `INSERT … VALUES (…), (…)` pages put one
placeholder per value in a statement too long for psycopg's query cache, and psycopg then
re-parses that text in Python for every page: most of a 20,000-row insert was spent there
(bench/scheduler_tick.py). Passing one array per column to `unnest(...)` makes it one short,
cached statement. SQLite keeps the ordinary executemany path (no arrays there, and it is fast).

The arrays go in psycopg's binary format (`array_param`): in the text format psycopg runs a
regular expression over every element to decide its quoting, then escapes it, which was a
quarter of a 20,000-message tick's Python time; the binary format just writes lengths and bytes.
Arrays of whole numbers are the exception: their text form needs no quoting, and one str.join
makes it faster than any dumper.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from psycopg import adapters
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import BindParameter, ColumnElement, Dialect, String, Table, any_, bindparam, text
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType, TypeEngine


class BinaryArray(list[Any]):
    """A list psycopg sends to PostgreSQL as a binary array (registered below)."""


adapters.register_dumper(BinaryArray, ListBinaryDumper)


def array_param(
    name: str | None, values: Iterable[Any], item_type: TypeEngine[Any], dialect: Dialect
) -> BindParameter[Any]:
    """A bound PostgreSQL array of `values`, each converted as `item_type` would convert it
    (the statement casts it to its SQL array type: `CAST(:name AS INTEGER[])`)."""
    process = item_type.dialect_impl(dialect).bind_processor(dialect)
    items = BinaryArray(values if process is None else (process(v) for v in values))
    # Exactly int: a bool (an int subclass) or an IntEnum keeps the binary form, whose
    # dumpers know them.
    if items and all(type(v) is int or v is None for v in items):
        # Whole numbers need no quoting or escaping, so their array's text form is built by
        # one str.join; psycopg's binary dumper first scans the list for the widest integer
        # type, then calls Python for every element.
        literal = "{" + ",".join("NULL" if v is None else str(v) for v in items) + "}"
        return bindparam(name, literal, type_=NullType())
    # NullType: no SQLAlchemy processing, which would copy the list into a plain one.
    return bindparam(name, items, type_=NullType())


def insert_ignoring_conflicts(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert `rows` (all with the same keys), skipping any that hit a unique constraint;
    returns how many were really inserted (RETURNING, since rowcount is unreliable here)."""
    return len(insert_returning_ignoring_conflicts(session, table, rows, ("id",)))


def insert_returning_ignoring_conflicts(
    session: Session, table: Table, rows: list[dict[str, Any]], returning: Sequence[str]
) -> list[tuple[Any, ...]]:
    """`insert_ignoring_conflicts`, returning the `returning` columns of the rows really
    inserted."""
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        insert = (
            sqlite.insert(table)
            .on_conflict_do_nothing()
            .returning(*(table.c[name] for name in returning))
        )
        return [tuple(row) for row in session.execute(insert, rows)]
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    # A column with the same value in every row (the tick's status, times, worker id…) is one
    # bound scalar instead of an array of copies: each array element costs Python time in
    # psycopg's dumper. At least one column stays an array, for the row count.
    varying = [_varies(rows, name) for name in names]
    if not any(varying):
        varying[0] = True
    arrays = [i for i, vary in enumerate(varying) if vary]
    element_types = [_element_type(column.type, dialect) for column in columns]
    unnest = ", ".join(f"CAST(:c{i} AS {element_types[i]}[])" for i in arrays)
    values = ", ".join(
        f"v.c{i}" if vary else f"CAST(:c{i} AS {element_types[i]})"
        for i, vary in enumerate(varying)
    )
    # Only the table's own column names are spliced in; every value is bound.
    statement = text(
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
        f"SELECT {values} FROM unnest({unnest}) AS v({', '.join(f'c{i}' for i in arrays)}) "
        f"ON CONFLICT DO NOTHING "
        f"RETURNING {', '.join(table.c[name].name for name in returning)}"
    ).bindparams(
        *(
            array_param(f"c{i}", [row[name] for row in rows], column.type, dialect)
            if vary
            else bindparam(f"c{i}", rows[0][name], type_=column.type)
            for i, (name, column, vary) in enumerate(zip(names, columns, varying, strict=True))
        )
    )
    return [tuple(row) for row in session.execute(statement)]


def _varies(rows: list[dict[str, Any]], name: str) -> bool:
    first = rows[0][name]
    kind = type(first)
    return any(
        (value := row[name]) is not first and (type(value) is not kind or value != first)
        for row in rows
    )


def _element_type(column_type: TypeEngine[Any], dialect: Dialect) -> str:
    """The SQL type of an array's elements: a string column's type without its length, since
    CAST(... AS VARCHAR(40)[]) silently cuts longer values where the column would refuse them."""
    if isinstance(column_type, String) and column_type.length is not None:
        return String().compile(dialect=dialect)
    return column_type.compile(dialect=dialect)


def in_ids(session: Session, column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL `column = ANY(array)`: one bound array instead of one
    placeholder per id, so the statement text stays short and psycopg's cache holds it."""
    values = list(ids)
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        return cast(
            "ColumnElement[bool]",
            column
            == any_(sql_cast(array_param(None, values, column.type, dialect), ARRAY(column.type))),
        )
    return cast("ColumnElement[bool]", column.in_(values))
