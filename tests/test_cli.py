"""The `checkin` command, run as a user runs it: a subprocess in a directory of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db import make_engine, make_session_factory
from bot.services.flags import raise_flag
from tests.conftest import FIXED_NOW

CHECKIN = [sys.executable, "-m", "bot.cli"]
# The subprocess runs this tree's code, not whichever copy the venv has installed.
SOURCE_ROOT = str(Path(__file__).resolve().parents[1])
COMMANDS = (
    "init-db",
    "serve",
    "worker",
    "tick",
    "plan",
    "flags",
    "import-participants",
    "import-appointments",
    "create-user",
    "demo",
)


def checkin(
    workdir: Path, database_url: str, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "PYTHONPATH": SOURCE_ROOT,
        "DATABASE_URL": database_url,
        **(env or {}),
    }
    return subprocess.run(
        [*CHECKIN, *args],
        cwd=workdir,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = checkin(tmp_path, "sqlite:///x.sqlite3", "--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
        sub = checkin(tmp_path, "sqlite:///x.sqlite3", command, "--help")
        assert sub.returncode == 0, sub.stderr


def test_init_db_is_idempotent_and_seeds_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    first = checkin(tmp_path, url, "init-db")
    assert first.returncode == 0, first.stderr
    assert "up to date" in first.stdout
    second = checkin(tmp_path, url, "init-db")
    assert second.returncode == 0, second.stderr


def test_bad_configuration_fails_naming_the_variable(tmp_path: Path) -> None:
    result = checkin(
        tmp_path, "sqlite:///x.sqlite3", "flags", env={"PROGRAM_TIMEZONE": "Nowhere/Land"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: PROGRAM_TIMEZONE:")


def test_create_user_reads_password_from_stdin_and_refuses_duplicates(
    tmp_path: Path, database_url: str
) -> None:
    ok = checkin(
        tmp_path,
        database_url,
        "create-user",
        "Rosa@Example.org",
        "--role",
        "coach",
        "--name",
        "Rosa Diaz",
        stdin="a long enough password\n",
    )
    assert ok.returncode == 0, ok.stderr
    assert "Created coach rosa@example.org" in ok.stdout
    again = checkin(
        tmp_path,
        database_url,
        "create-user",
        "rosa@example.org",
        "--role",
        "coach",
        stdin="another password\n",
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr
    short = checkin(
        tmp_path, database_url, "create-user", "x@example.org", "--role", "admin", stdin="short\n"
    )
    assert short.returncode == 1 and "password" in short.stderr


def test_import_participants_reports_bad_lines_and_exits_1(
    tmp_path: Path, database_url: str
) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "external_id,first_name,phone,release_date\nA-1,Ann,202-555-0101,2026-03-01\nA-2,Bo,555-01,2026-03-01\n"
    )
    result = checkin(tmp_path, database_url, "import-participants", str(csv_file))
    assert result.returncode == 1
    assert "line 3: phone: '555-01' is not a valid mobile number" in result.stderr
    assert "nothing was imported" in result.stderr
    csv_file.write_text(
        "external_id,first_name,phone,release_date\nA-1,Ann,202-555-0101,2026-03-01\n"
    )
    good = checkin(tmp_path, database_url, "import-participants", str(csv_file))
    assert good.returncode == 0, good.stderr
    assert "1 created" in good.stdout


def test_import_appointments_prints_a_warning_per_place_reminders_will_not_name(
    tmp_path: Path, database_url: str
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        "external_id,first_name,phone,release_date\nA-1,Ann,202-555-0101,2026-03-01\n"
    )
    assert checkin(tmp_path, database_url, "import-participants", str(people)).returncode == 0
    appointments = tmp_path / "appointments.csv"
    appointments.write_text(
        "external_id,kind,starts_at,location\n"
        "A-1,benefits,2026-04-01T09:00,Main St Library\n"
        "A-1,court,2026-04-02T09:00,C0urt annex\n",
        encoding="utf-8",
    )
    result = checkin(tmp_path, database_url, "import-appointments", str(appointments))
    assert result.returncode == 0, result.stderr
    assert "2 created" in result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "warning: line 3: location: 'C0urt annex' (A-1) has a sensitive word (“court”)"
    )


def test_import_participants_records_consent_asserted_by_the_file_and_who_ran_it(
    tmp_path: Path, database_url: str
) -> None:
    from sqlalchemy import select

    from bot.models import ConsentEvent, Participant

    csv_file = tmp_path / "intake.csv"
    csv_file.write_text(
        "external_id,first_name,phone,release_date,consent_source,consent_date\n"
        "A-1,Ann,202-555-0101,2026-03-01,,\n"
        "A-2,Bo,202-555-0102,2026-03-01,signed enrolment form,2026-02-28\n"
    )
    result = checkin(tmp_path, database_url, "import-participants", str(csv_file))
    assert result.returncode == 0, result.stderr
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        rows = session.execute(
            select(Participant.external_id, ConsentEvent)
            .join(ConsentEvent, ConsentEvent.participant_id == Participant.id)
            .order_by(Participant.external_id)
        ).all()
    engine.dispose()
    (_, asserted), (_, evidence) = rows
    assert (asserted.source, asserted.import_file) == (None, "intake.csv")
    assert asserted.recorded_by is not None and asserted.recorded_by.startswith("cli:")
    assert (evidence.source, str(evidence.consent_date)) == ("signed enrolment form", "2026-02-28")


def test_import_participants_names_a_bad_consent_date_line(
    tmp_path: Path, database_url: str
) -> None:
    csv_file = tmp_path / "intake.csv"
    csv_file.write_text(
        "external_id,first_name,phone,release_date,consent_source,consent_date\n"
        "A-1,Ann,202-555-0101,2026-03-01,signed form,2026-02-31\n"
    )
    result = checkin(tmp_path, database_url, "import-participants", str(csv_file))
    assert result.returncode == 1
    assert "line 2: consent_date: '2026-02-31' is not a date like 2026-03-14" in result.stderr
    assert "nothing was imported" in result.stderr


def test_import_of_a_missing_file_says_so(tmp_path: Path, database_url: str) -> None:
    result = checkin(tmp_path, database_url, "import-participants", "nope.csv")
    assert result.returncode != 0
    assert "nope.csv" in result.stderr


def test_flags_json_lists_open_flags_urgent_first(tmp_path: Path, database_url: str) -> None:
    from tests.factories import make_participant

    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        p = make_participant(session, FIXED_NOW, external_id="J-1", phone="+12025550161")
        raise_flag(
            session, reason="no_reply", severity="normal", now=FIXED_NOW, participant_id=p.id
        )
        raise_flag(session, reason="crisis", severity="urgent", now=FIXED_NOW, participant_id=p.id)
        session.commit()
    engine.dispose()
    result = checkin(tmp_path, database_url, "flags", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["reason"] for d in data] == ["crisis", "no_reply"]
    assert data[0] == {
        "id": data[0]["id"],
        "participant": "J-1",
        "phone_masked": "+1******0161",
        "reason": "crisis",
        "severity": "urgent",
        "state": "open",
        "opened_at": "2026-03-02T15:00:00Z",
        "coach": None,
    }
    table = checkin(tmp_path, database_url, "flags")
    assert table.returncode == 0 and "crisis" in table.stdout.splitlines()[1]


@pytest.mark.parametrize("command", ["serve"])
def test_serve_without_secret_key_fails_naming_it(tmp_path: Path, command: str) -> None:
    result = checkin(tmp_path, "sqlite:///x.sqlite3", command)
    assert result.returncode == 1
    assert "SECRET_KEY" in result.stderr


def test_serve_with_a_short_secret_key_fails_naming_it(tmp_path: Path) -> None:
    result = checkin(tmp_path, "sqlite:///x.sqlite3", "serve", env={"SECRET_KEY": "x"})
    assert result.returncode == 1
    assert "SECRET_KEY" in result.stderr and "at least 32" in result.stderr


def test_tick_records_the_heartbeat_at_the_time_it_ran_not_its_now(
    tmp_path: Path, database_url: str
) -> None:
    from datetime import UTC, datetime

    from bot.services.heartbeat import worker_state

    started = datetime.now(UTC)
    result = checkin(tmp_path, database_url, "tick", "--now", "2020-01-01T10:00:00Z")
    assert result.returncode == 0, result.stderr
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        state = worker_state(session, datetime.now(UTC))
    engine.dispose()
    assert state.health == "ok"
    assert state.last_pass_at is not None and state.last_pass_at >= started
