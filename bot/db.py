"""Engine and session factory, plus the Alembic entry points used by `checkin init-db`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True)
class Timeouts:
    """How long a session waits before giving up (issue 17.3): to connect (and to get a pooled
    connection), for one statement, and for one lock. None: no limit (migrations).

    On PostgreSQL the statement and lock limits are the server's `statement_timeout` and
    `lock_timeout`, set for every connection; a server that stops answering altogether is
    noticed by `tcp_user_timeout`. SQLite has only its busy timeout (one writer at a time: a
    wait for the write lock), `sqlite_busy`."""

    connect: float
    statement: float | None
    lock: float | None
    sqlite_busy: float = 30


# The web app: a webhook must answer within Twilio's 15 s, spooling the text when the database
# does not answer (bot.services.spool), so every wait is a few seconds.
WEB_TIMEOUTS = Timeouts(connect=3, statement=5, lock=3, sqlite_busy=8)
# The worker and the command line: generous, but nothing waits forever on a held lock or a
# dead server.
DEFAULT_TIMEOUTS = Timeouts(connect=10, statement=300, lock=30)


def make_engine(
    database_url: str, *, timeouts: Timeouts | None = DEFAULT_TIMEOUTS, **kwargs: Any
) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout so that the web app
    and the worker can share one file. `timeouts` bound every session's waits (None: no limit
    but SQLite's usual 30 s busy timeout; the migrations)."""
    url = make_url(database_url)
    # A failed statement's error text would otherwise quote its parameters: message bodies and
    # phone numbers, which must never reach a log.
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        database = url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        busy = 30.0 if timeouts is None else timeouts.sqlite_busy
        engine = create_engine(url, connect_args={"timeout": busy}, **kwargs)

        def pragmas(dbapi_connection: Any, record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, record, busy_millis=int(busy * 1000))

        event.listen(engine, "connect", pragmas)
        # pysqlite's own transaction handling defers BEGIN; we take control so that a
        # transaction that will write starts as a write transaction (see _sqlite_begin).
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if timeouts is not None:
        connect_args = dict(kwargs.pop("connect_args", {}))
        for key, value in _pg_timeout_args(timeouts).items():
            connect_args.setdefault(key, value)
        kwargs["connect_args"] = connect_args
        if "poolclass" not in kwargs:  # a NullPool has no waits (and takes no timeout)
            kwargs.setdefault("pool_timeout", timeouts.connect)
    if url.get_driver_name() == "psycopg":
        # psycopg prepares a statement on the server after 5 runs, and PostgreSQL then may
        # switch it to a generic plan, costed with statistics that can be minutes old: after
        # a tick inserted 20,000 outbox rows into a table last analysed empty, the generic plan
        # of the sent-outcome UPDATE scanned the table (40 ms a batch instead of 10 ms,
        # bench/scheduler_tick.py). Planning each statement with its values costs ~0.1 ms.
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("prepare_threshold", None)
        kwargs["connect_args"] = connect_args
    return create_engine(url, **kwargs)


def make_probe_engine(database_url: str, timeout_seconds: float) -> Engine:
    """An engine for health checks, that gives up instead of waiting: connecting, each
    statement and each lock wait are bounded by `timeout_seconds` (libpq counts the connect
    timeout in whole seconds, at least 2). On SQLite it never begins a write transaction (a
    reader never waits for a writer in WAL mode) and waits at most that long for a lock."""
    url = make_url(database_url)
    millis = max(int(timeout_seconds * 1000), 1)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"timeout": timeout_seconds}, hide_parameters=True, pool_size=2
        )

        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={millis}")
            cursor.close()

        event.listen(engine, "connect", pragmas)
        return engine
    connect_args: dict[str, Any] = {
        "connect_timeout": max(2, math.ceil(timeout_seconds)),
        "options": f"-c statement_timeout={millis} -c lock_timeout={millis}",
    }
    if url.get_driver_name() == "psycopg":
        connect_args["prepare_threshold"] = None
    return create_engine(
        url,
        connect_args=connect_args,
        hide_parameters=True,
        pool_size=2,
        max_overflow=2,
        pool_timeout=timeout_seconds,
        pool_pre_ping=True,
    )


def _pg_timeout_args(timeouts: Timeouts) -> dict[str, Any]:
    """libpq connection parameters for `timeouts` (libpq counts the connect timeout in whole
    seconds, at least 2)."""
    options = []
    if timeouts.statement is not None:
        options.append(f"-c statement_timeout={int(timeouts.statement * 1000)}")
    if timeouts.lock is not None:
        options.append(f"-c lock_timeout={int(timeouts.lock * 1000)}")
    args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(timeouts.connect))}
    if options:
        args["options"] = " ".join(options)
    if timeouts.statement is not None:
        # A server that stops answering (a host gone, packets dropped) never sends the
        # statement timeout's error: the kernel gives up on the connection after this long.
        args["tcp_user_timeout"] = int((timeouts.statement + timeouts.connect) * 1000)
    return args


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_millis: int = 30000) -> None:
    dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_millis}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two processes claiming the same outbox row
    # serialise instead of failing with "database is locked" on upgrade from a read lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error, always close."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def one_connection_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that keeps one pooled connection for all its transactions. A plain session
    gives its connection back at each commit and checks one out (and pings it) again for the
    next transaction; a request that commits twice pays that twice. The caller commits.

    `factory` must be bound to an Engine (make_session_factory does that). Inside, the session
    is bound to that one Connection, so code that opens another session from `factory` gets a
    second connection: pass this session down instead."""
    engine = factory.kw.get("bind")
    if not isinstance(engine, Engine):
        raise TypeError("one_connection_session needs a sessionmaker bound to an Engine")
    with engine.connect() as connection, factory(bind=connection) as session:
        yield session


@contextmanager
def statements_commit(session: Session) -> Iterator[Callable[[], None]]:
    """Inside, on PostgreSQL, each statement of `session` commits on its own (the connection's
    autocommit) until the yielded `begin` is called; from then on, and after the block, the
    session works in ordinary transactions again. A unit of work of one statement costs one
    round trip this way instead of three (BEGIN, the statement, COMMIT); call `begin` before
    any unit of work of more than one. Only for a session from `one_connection_session`,
    before it has begun a transaction.

    On SQLite nothing changes (`begin` does nothing): the caller's commits commit, as before."""
    connection = session.bind
    if not isinstance(connection, Connection):
        raise TypeError("statements_commit needs a session bound to one Connection")
    if connection.dialect.name != "postgresql":
        yield _nothing
        return
    if session.in_transaction() or connection.in_transaction():
        raise RuntimeError("statements_commit must start outside a transaction")
    level = connection.default_isolation_level or "READ COMMITTED"
    autocommit = True

    def begin() -> None:
        nonlocal autocommit
        if autocommit:
            session.commit()  # ends the session's transaction: nothing is left to commit
            connection.execution_options(isolation_level=level)
            autocommit = False

    connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield begin
    finally:
        if autocommit:
            if session.in_transaction():
                session.rollback()  # nothing to undo: every statement committed itself
            connection.execution_options(isolation_level=level)


def _nothing() -> None:
    return None


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def is_postgresql(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (set-based statements use its extensions)."""
    return session.get_bind().dialect.name == "postgresql"
