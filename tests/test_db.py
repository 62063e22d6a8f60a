"""bot.db: engine settings."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text


@pytest.mark.postgres_only  # SQLite has no server-side plans to go stale
def test_postgresql_plans_each_statement_with_its_values(engine: Engine) -> None:
    """No server-side prepared statements, so PostgreSQL never falls back to a generic plan
    costed with stale statistics (see bot.db.make_engine)."""
    with engine.connect() as conn:
        for n in range(12):  # psycopg would prepare from the 5th run, PostgreSQL go generic
            conn.execute(text("SELECT :n"), {"n": n})
        assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
