"""The models and the migrations agree, on every backend."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, inspect, select
from sqlalchemy.orm import Session

from bot.db import MIGRATIONS_DIR, alembic_config
from bot.models import Base, OutboundMessage, Template, TemplateVersion
from messages.defaults import default_templates


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


def _load_revision(name: str) -> Any:
    path = MIGRATIONS_DIR / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_self_service_templates_reach_an_install_seeded_before_them(
    engine: Engine, database_url: str
) -> None:
    revision = _load_revision("0013_self_service_templates")
    config = alembic_config(database_url)
    command.downgrade(config, "0010_partial_indexes")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        # Seeded before: English HELP as shipped, Spanish HELP edited by a coordinator.
        for language, body in (("en", revision.OLD_HELP["en"]), ("es", "Mi texto. ALTO")):
            template = Template(key="help", language=language, body=body, version=1, updated_at=at)
            session.add(template)
            session.flush()
            session.add(
                TemplateVersion(template_id=template.id, version=1, body=body, created_at=at)
            )
    command.upgrade(config, "head")
    with Session(engine) as session:
        bodies = {(t.key, t.language): t for t in session.scalars(select(Template))}
        assert bodies[("help", "en")].body == revision.NEW_HELP["en"]
        assert bodies[("help", "en")].version == 2
        assert bodies[("help", "es")].body == "Mi texto. ALTO"  # a coordinator's own words
        expected = {(k, lang) for k in revision.NEW_TEMPLATES for lang in ("en", "es")}
        assert expected <= set(bodies)
        defaults = default_templates()
        assert all(bodies[key].body == defaults[key] for key in expected)
        assert revision.NEW_HELP["en"] == defaults[("help", "en")]
        notes = session.scalars(
            select(TemplateVersion.note).where(
                TemplateVersion.template_id == bodies[("help", "en")].id
            )
        ).all()
        assert sorted(n or "" for n in notes) == ["", "default updated"]
    # A fresh install (no templates) is left to the seeding that follows the upgrade.
    command.downgrade(config, "0010_partial_indexes")
    with Session(engine) as session, session.begin():
        session.execute(delete(TemplateVersion))
        session.execute(delete(Template))
    command.upgrade(config, "head")
    with Session(engine) as session:
        assert session.scalars(select(Template)).all() == []


def test_a_staff_reply_to_an_unknown_number_becomes_a_routine_reply_when_downgraded(
    engine: Engine, database_url: str
) -> None:
    config = alembic_config(database_url)
    before = ScriptDirectory.from_config(config).get_revision("0025_unknown_answers").down_revision
    assert isinstance(before, str)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        session.add(
            OutboundMessage(
                idempotency_key="unknown_reply:k",
                purpose="coach_reply",
                channel="sms",
                to_address="+13125550177",
                body="Who is this?",
                status="sent",
                send_after=at,
                created_at=at,
            )
        )
    command.downgrade(config, before)
    with Session(engine) as session:
        assert session.scalars(select(OutboundMessage.purpose)).all() == ["reply"]
    command.upgrade(config, "head")
