"""bot.db: engine settings."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError


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
