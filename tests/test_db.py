"""bot.db: engine settings."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bot.db import make_session_factory, one_connection_session, statements_commit


@pytest.mark.postgres_only  # SQLite has no server-side plans to go stale
def test_postgresql_plans_each_statement_with_its_values(engine: Engine) -> None:
    """No server-side prepared statements, so PostgreSQL never falls back to a generic plan
    costed with stale statistics (see bot.db.make_engine)."""
    with engine.connect() as conn:
        for n in range(12):  # psycopg would prepare from the 5th run, PostgreSQL go generic
            conn.execute(text("SELECT :n"), {"n": n})
        assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0


def test_a_failed_statement_does_not_quote_its_parameters(engine: Engine) -> None:
    # Error text ends up in logs; parameters are message bodies and phone numbers.
    with engine.connect() as conn, pytest.raises(DBAPIError) as failure:
        conn.execute(text("SELECT * FROM no_such_table WHERE x = :x"), {"x": "i want to die"})
    assert "i want to die" not in str(failure.value)


def _rows(engine: Engine) -> int:
    """What another connection sees (committed rows only)."""
    with engine.connect() as other:
        return int(other.execute(text("SELECT count(*) FROM program_settings")).scalar_one())


_INSERT = text(
    "INSERT INTO program_settings (key, value, updated_at) VALUES (:id, '{}', CURRENT_TIMESTAMP)"
)


@pytest.mark.postgres_only  # SQLite keeps its transactions (the caller's commit commits)
def test_inside_statements_commit_each_statement_commits_until_begin(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with one_connection_session(sessions) as session, statements_commit(session) as begin:
        session.execute(_INSERT, {"id": "a"})
        assert _rows(engine) == 1  # committed already, without a COMMIT
        begin()
        session.execute(_INSERT, {"id": "b"})
        assert _rows(engine) == 1  # in a transaction now
        session.rollback()
    assert _rows(engine) == 1


@pytest.mark.postgres_only
def test_after_statements_commit_the_connection_is_back_to_transactions(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with one_connection_session(sessions) as session:
        with statements_commit(session):
            session.execute(_INSERT, {"id": "a"})
        session.execute(_INSERT, {"id": "b"})
        session.rollback()
    assert _rows(engine) == 1
    with engine.connect() as conn:  # the pooled connection too
        conn.execute(_INSERT, {"id": "c"})
        conn.rollback()
    assert _rows(engine) == 1


def test_statements_commit_leaves_sqlite_transactions_alone(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with one_connection_session(sessions) as session, statements_commit(session) as begin:
        session.execute(_INSERT, {"id": "a"})
        if engine.dialect.name == "sqlite":
            session.rollback()
            assert _rows(engine) == 0
        begin()
        session.execute(_INSERT, {"id": "b"})
        session.commit()
    assert _rows(engine) == (1 if engine.dialect.name == "sqlite" else 2)
