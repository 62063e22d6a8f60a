"""`checkin backup` / `checkin restore`: a round trip keeps every row, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.db import make_engine, make_session_factory
from bot.models import AuditLog, Base, Participant, User
from bot.services.audit import record
from bot.services.backup import BackupError, dump, restore
from bot.services.flags import raise_flag
from bot.services.staff_sessions import start_session
from tests.factories import make_appointment, make_participant, make_user


def _fill(session: Session, now: datetime) -> None:
    cover = make_user(session, now, name="Cora Cover")
    # The covering coach is created after the one they cover: the self-reference must be
    # restored whatever the order of ids.
    coach = make_user(session, now, name="Ben Coach")
    cover.covering_user_id = coach.id
    coach.covering_user_id = None
    person = make_participant(session, now, coach_id=coach.id, first_name="Marisól")
    make_appointment(session, person, now + timedelta(days=3), now)
    raise_flag(session, reason="no_reply", now=now, participant_id=person.id)
    record(session, now=now, action="test", actor="test", detail={"nested": {"ü": [1, 2]}})
    start_session(session, coach, now)
    session.commit()


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    skipped = {"staff_sessions"}
    with engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(
                    select(table).order_by(*table.primary_key.columns)
                ).all()
            ]
            for table in Base.metadata.sorted_tables
            if table.name not in skipped
        }


@pytest.fixture
def second_database(database_url: str, tmp_path: Any) -> Any:
    """An empty database of the same kind (a private PostgreSQL database, or a new file)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    name = f"{url.database}_restore"
    admin = make_engine(
        url.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_backup_restored_into_an_empty_database_holds_every_row(
    engine: Engine, sessions: sessionmaker[Session], second_database: str, now: datetime
) -> None:
    with sessions() as session:
        _fill(session, now)
    out = io.StringIO()
    summary = dump(engine, out, now=now)
    assert summary.rows > 5
    target = make_engine(second_database)
    try:
        restored = restore(target, second_database, io.StringIO(out.getvalue()), force=False)
        assert restored.rows == summary.rows
        assert _snapshot(target) == _snapshot(engine)
        # New rows get fresh ids after the restored ones (PostgreSQL sequences moved on).
        with make_session_factory(target)() as session:
            fresh = make_user(session, now)
            assert fresh.id > max(session.scalars(select(User.id).where(User.id != fresh.id)))
            person = session.scalars(select(Participant)).one()
            assert person.first_name == "Marisól"
            detail = session.scalars(select(AuditLog.detail).where(AuditLog.action == "test"))
            assert detail.one() == {"nested": {"ü": [1, 2]}}
            session.rollback()
    finally:
        target.dispose()


def test_restore_refuses_a_database_in_use_unless_forced(
    engine: Engine, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions() as session:
        _fill(session, now)
    out = io.StringIO()
    dump(engine, out, now=now)
    before = _snapshot(engine)
    url = engine.url.render_as_string(hide_password=False)
    with pytest.raises(BackupError, match="already holds"):
        restore(engine, url, io.StringIO(out.getvalue()), force=False)
    with sessions() as session:
        make_user(session, now, email="late@example.org")
        session.commit()
    restore(engine, url, io.StringIO(out.getvalue()), force=True)
    assert _snapshot(engine) == before


def test_a_cut_short_or_foreign_file_changes_nothing(
    engine: Engine, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions() as session:
        _fill(session, now)
    out = io.StringIO()
    dump(engine, out, now=now)
    before = _snapshot(engine)
    url = engine.url.render_as_string(hide_password=False)
    lines = out.getvalue().splitlines(keepends=True)
    with pytest.raises(BackupError, match="cut short"):
        restore(engine, url, io.StringIO("".join(lines[:-1])), force=True)
    with pytest.raises(BackupError, match="not a checkin backup"):
        restore(engine, url, io.StringIO("id,name\n1,x\n"), force=True)
    header = json.loads(lines[0])
    header["revision"] = "0001_initial_schema"
    with pytest.raises(BackupError, match="schema"):
        restore(
            engine, url, io.StringIO(json.dumps(header) + "\n" + "".join(lines[1:])), force=True
        )
    assert _snapshot(engine) == before
