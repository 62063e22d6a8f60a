"""`checkin backup FILE` / `checkin restore FILE` (issue 18.5): the whole database as JSON lines,
the same on SQLite and PostgreSQL, so a backup moves between them.

The file: one header line (`{"format": "checkin-backup", "version": 1, "revision": …}`), then
for each table in dependency order (parents first) a line `{"table": name, "columns": [...]}`
followed by one JSON array per row, then `{"end": true, "rows": N}` (a truncated file is
refused). Instants are ISO-8601 UTC, dates ISO dates, JSON columns as JSON. The dump reads one
consistent snapshot (a single transaction; REPEATABLE READ on PostgreSQL).

Restore goes into a database at the schema revision the backup was made at, which must be this
release's head: it upgrades an empty database to head first. It refuses a database that holds
users or participants unless `force`, and then replaces everything in it (the defaults
`checkin init-db` seeds included), in one transaction: all of the backup or nothing. Sign-ins
(staff_sessions) are not backed up: after a restore everyone signs in again. On PostgreSQL the
id sequences are moved past the restored ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import IO, Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Date, DateTime, Engine, Table, Time, func, select, update
from sqlalchemy.types import TypeEngine

from bot.db import alembic_config, upgrade_to_head
from bot.models import Base

FORMAT = "checkin-backup"
VERSION = 1
SKIPPED_TABLES = frozenset({"staff_sessions"})
# A database holding any of these is in use: restore refuses it without --force.
IN_USE_TABLES = ("users", "participants")
BATCH = 1000


class BackupError(ValueError):
    """The backup cannot be written or restored; the message says why and what to do."""


@dataclass(frozen=True)
class BackupSummary:
    tables: int
    rows: int
    revision: str


def _tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED_TABLES]


def head_revision(database_url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _is_instant(column_type: TypeEngine[Any]) -> bool:
    impl = getattr(column_type, "impl", column_type)
    return isinstance(column_type, DateTime) or isinstance(impl, DateTime)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def _decoder(column_type: TypeEngine[Any]) -> Any:
    if _is_instant(column_type):
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if isinstance(column_type, Date):
        return lambda v: None if v is None else date.fromisoformat(v)
    if isinstance(column_type, Time):
        return lambda v: None if v is None else time.fromisoformat(v)
    return None


def dump(engine: Engine, out: IO[str], *, now: datetime) -> BackupSummary:
    """Write the whole database to `out` (text, one JSON value per line)."""
    options: dict[str, Any] = {}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    total = 0
    tables = _tables()
    with engine.connect().execution_options(**options) as connection, connection.begin():
        revision = current_revision(connection)
        if revision is None:
            raise BackupError("the database has no schema yet: run `checkin init-db` first")
        header = {
            "format": FORMAT,
            "version": VERSION,
            "revision": revision,
            "created_at": now.astimezone(UTC).isoformat(),
            "dialect": engine.dialect.name,
            "tables": [t.name for t in tables],
        }
        out.write(json.dumps(header) + "\n")
        for table in tables:
            columns = [c.name for c in table.columns]
            out.write(json.dumps({"table": table.name, "columns": columns}) + "\n")
            order = list(table.primary_key.columns) or list(table.columns)
            result = connection.execution_options(yield_per=BATCH).execute(
                select(table).order_by(*order)
            )
            for row in result:
                out.write(json.dumps([_encode(v) for v in row], ensure_ascii=False) + "\n")
                total += 1
        out.write(json.dumps({"end": True, "rows": total}) + "\n")
    return BackupSummary(len(tables), total, revision)


def _lines(source: IO[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError:
            raise BackupError(f"line {number}: not JSON: this is not a checkin backup") from None


def rows_in_use(engine: Engine) -> int:
    with engine.connect() as connection:
        total = 0
        for name in IN_USE_TABLES:
            table = Base.metadata.tables[name]
            total += int(connection.scalar(select(func.count()).select_from(table)) or 0)
        return total


def restore(engine: Engine, database_url: str, source: IO[str], *, force: bool) -> BackupSummary:
    """Load a backup into the database `engine` points at (see the module docstring)."""
    lines = _lines(source)
    first = next(lines, None)
    if first is None or not isinstance(first[1], dict) or first[1].get("format") != FORMAT:
        raise BackupError("this file is not a checkin backup (its first line is not the header)")
    header = first[1]
    if header.get("version") != VERSION:
        raise BackupError(f"backup format version {header.get('version')} is not supported")
    head = head_revision(database_url)
    if header.get("revision") != head:
        raise BackupError(
            f"the backup is of schema {header.get('revision')!r} and this checkin's is {head!r}: "
            "restore it with the checkin release that made it, then upgrade that release"
        )
    upgrade_to_head(database_url)
    in_use = rows_in_use(engine)
    if in_use and not force:
        raise BackupError(
            f"the database already holds {in_use} user(s) or participant(s); restore into an "
            "empty database, or pass --force to replace everything in it"
        )
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    total = 0
    restored: set[str] = set()
    ended = False
    with engine.begin() as connection:
        for each in reversed(Base.metadata.sorted_tables):
            connection.execute(each.delete())
        table: Table | None = None
        columns: list[str] = []
        decoders: list[Any] = []
        batch: list[dict[str, Any]] = []
        self_refs: list[str] = []
        deferred: list[dict[str, Any]] = []

        def flush() -> None:
            if table is not None and batch:
                connection.execute(table.insert(), batch)
                batch.clear()

        def finish_table() -> None:
            flush()
            if table is not None:
                pk = list(table.primary_key.columns)
                for values in deferred:
                    key = {c.name: values[c.name] for c in pk}
                    sets = {name: values[name] for name in self_refs}
                    connection.execute(
                        update(table).where(*(c == key[c.name] for c in pk)).values(**sets)
                    )
                deferred.clear()

        for number, value in lines:
            if ended:
                raise BackupError(f"line {number}: data after the end of the backup")
            if isinstance(value, dict) and "table" in value:
                finish_table()
                name = value["table"]
                if name not in tables or name in SKIPPED_TABLES:
                    raise BackupError(f"line {number}: unknown table {name!r}")
                table = tables[name]
                columns = list(value.get("columns", []))
                unknown = set(columns) - set(table.columns.keys())
                if unknown:
                    raise BackupError(f"line {number}: {name} has no column(s) {sorted(unknown)}")
                decoders = [_decoder(table.columns[c].type) for c in columns]
                self_refs = [
                    fk.parent.name
                    for fk in table.foreign_keys
                    if fk.column.table is table and fk.parent.name in columns
                ]
                restored.add(name)
            elif isinstance(value, dict) and value.get("end"):
                finish_table()
                if value.get("rows") != total:
                    raise BackupError(
                        f"line {number}: the backup says {value.get('rows')} rows, it held {total}"
                    )
                ended = True
            elif isinstance(value, list) and table is not None:
                if len(value) != len(columns):
                    raise BackupError(
                        f"line {number}: {len(value)} values for {len(columns)} columns"
                    )
                row = {
                    c: (d(v) if d else v) for c, d, v in zip(columns, decoders, value, strict=True)
                }
                if self_refs and any(row[c] is not None for c in self_refs):
                    deferred.append(dict(row))
                    for c in self_refs:
                        row[c] = None
                batch.append(row)
                total += 1
                if len(batch) >= BATCH:
                    flush()
            else:
                raise BackupError(f"line {number}: not part of a checkin backup")
        if not ended:
            raise BackupError("the backup ends early (no end line): it was cut short")
        if engine.dialect.name == "postgresql":
            _move_sequences(connection, [tables[n] for n in restored])
    return BackupSummary(len(restored), total, head)


def _move_sequences(connection: Connection, tables: list[Table]) -> None:
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not pk[0].autoincrement or pk[0].type.python_type is not int:
            continue
        highest = select(func.max(pk[0])).scalar_subquery()
        connection.execute(
            select(
                func.setval(
                    func.pg_get_serial_sequence(table.name, pk[0].name),
                    func.coalesce(highest, 1),
                    highest.is_not(None),
                )
            )
        )
