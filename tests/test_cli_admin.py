"""`checkin reset-password`, `backup`, `restore` and `doctor`, run as an admin runs them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.db import make_engine, make_session_factory
from bot.models import PasswordReset, User
from bot.services.heartbeat import record_pass
from bot.services.staff_sessions import token_digest
from tests.factories import make_participant, make_user
from tests.test_cli import checkin

SECRET = {"SECRET_KEY": "s" * 40, "PUBLIC_BASE_URL": "https://checkin.example.org"}


def test_help_lists_the_admin_commands(tmp_path: Path) -> None:
    result = checkin(tmp_path, "sqlite:///x.sqlite3", "--help")
    for command in ("reset-password", "backup", "restore", "doctor"):
        assert command in result.stdout


def test_reset_password_prints_a_one_time_link_under_the_public_url(
    tmp_path: Path, database_url: str
) -> None:
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        user = make_user(session, datetime.now(UTC), email="ana@example.org")
        session.commit()
        user_id = user.id
    result = checkin(tmp_path, database_url, "reset-password", "Ana@Example.org", env=SECRET)
    assert result.returncode == 0, result.stderr
    link = result.stdout.splitlines()[-1]
    assert link.startswith("https://checkin.example.org/reset/")
    token = link.rsplit("/", 1)[1]
    with make_session_factory(engine)() as session:
        reset = session.scalars(select(PasswordReset)).one()
        assert reset.user_id == user_id and reset.token_hash == token_digest(token)
    engine.dispose()
    unknown = checkin(tmp_path, database_url, "reset-password", "nobody@example.org", env=SECRET)
    assert unknown.returncode == 1 and "no user with email" in unknown.stderr


def test_backup_then_restore_into_an_empty_database(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        now = datetime.now(UTC)
        make_user(session, now, email="ana@example.org")
        make_participant(session, now)
        session.commit()
    engine.dispose()
    backup = tmp_path / "checkin-backup.jsonl"
    made = checkin(tmp_path, database_url, "backup", str(backup))
    assert made.returncode == 0, made.stderr
    assert backup.exists() and not (tmp_path / "checkin-backup.jsonl.partial").exists()
    # Into a new SQLite file (from PostgreSQL too: the format is the same on both).
    target = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    loaded = checkin(tmp_path, target, "restore", str(backup))
    assert loaded.returncode == 0, loaded.stderr
    restored = make_engine(target)
    with make_session_factory(restored)() as session:
        assert session.scalars(select(User.email)).all() == ["ana@example.org"]
    restored.dispose()
    again = checkin(tmp_path, database_url, "restore", str(backup))
    assert again.returncode == 1 and "--force" in again.stderr
    forced = checkin(tmp_path, database_url, "restore", "--force", str(backup))
    assert forced.returncode == 0, forced.stderr


def test_doctor_prints_one_line_per_check_and_fails_while_the_worker_is_down(
    tmp_path: Path, database_url: str
) -> None:
    down = checkin(tmp_path, database_url, "doctor", env=SECRET)
    assert down.returncode == 1
    lines = down.stdout.splitlines()
    assert any(line.startswith("FAIL worker: has never finished a pass -> ") for line in lines)
    assert "OK   migrations: at head" in down.stdout
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        record_pass(session, datetime.now(UTC), "worker-1")
        session.commit()
    engine.dispose()
    up = checkin(tmp_path, database_url, "doctor", env=SECRET)
    assert up.returncode == 0, up.stdout
    assert "WARN Twilio settings" in up.stdout and up.stdout.strip().endswith("All checks passed.")
