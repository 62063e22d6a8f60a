"""The models and the migrations agree, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from bot.db import MIGRATIONS_DIR, alembic_config
from bot.models import Base


def test_autogenerate_finds_no_difference_between_models_and_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_the_single_head_revision(engine: Engine, database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    heads = script.get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == heads[0]
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)


def test_migrations_directory_is_inside_the_installed_tree() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
