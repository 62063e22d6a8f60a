"""`checkin demo`: the seeded program has something on every page, and the command prints the
URL and one line per login (DESIGN.md, Precise rules)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.config import Config
from bot.db import make_engine, make_session_factory
from bot.demo import DemoError, DemoWorker, prepare_demo, simulated_tick
from bot.demo_seed import seed_demo
from bot.models import (
    Appointment,
    Base,
    Flag,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
    User,
)
from bot.services.heartbeat import worker_state
from bot.transport.simulated import SimulatedTransport
from tests.factories import make_participant, make_user
from tests.scheduler.fake_twilio import FakeTwilio

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_the_demo_seeds_staff_participants_appointments_conversations_and_flags(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    logins = seed_demo(url, NOW)
    assert [role for role, _, _ in logins] == ["admin", "coordinator", "coach", "coach", "coach"]
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
        assert count(User) == 5
        assert count(Participant) == 40
        assert count(Appointment) >= 20
        assert count(OutboundMessage) > 200 and count(InboundMessage) > 100
        days = {(NOW.date() - p.release_date).days for p in session.scalars(select(Participant))}
        assert min(days) < 0 and max(days) > 60  # some not home yet, some near the end
        languages = set(session.scalars(select(Participant.language)))
        assert languages == {"en", "es"}
        open_flags = session.execute(
            select(Flag.reason, Flag.severity).where(Flag.state != "resolved")
        ).all()
        assert ("crisis", "urgent") in open_flags
        assert {reason for reason, _ in open_flags} >= {"no_reply", "delivery_failed", "opted_out"}
        assert session.scalar(
            select(func.count()).select_from(Flag).where(Flag.state == "resolved")
        )
        # Texts are neutral: a Spanish participant's welcome is in Spanish and names no detail.
        spanish = session.scalars(select(Participant).where(Participant.language == "es")).first()
        assert spanish is not None
        welcome = session.scalars(
            select(OutboundMessage.body).where(
                OutboundMessage.participant_id == spanish.id, OutboundMessage.purpose == "welcome"
            )
        ).first()
        assert welcome is not None and welcome.startswith("Hola")
    engine.dispose()


def test_the_demo_inbox_holds_the_last_days_texts_not_months_of_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    seed_demo(url, NOW)
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        waiting = session.scalars(
            select(InboundMessage.received_at).where(InboundMessage.needs_reply.is_(True))
        ).all()
        handled = session.execute(
            select(InboundMessage.answer_kind, InboundMessage.answered_by_user_id).where(
                InboundMessage.needs_reply.is_(False)
            )
        ).all()
        # Some texts wait (the crisis among them), none for weeks; the older ones were
        # handled by a person, recorded as the inbox records it.
        assert 0 < len(waiting) < 40
        assert max(NOW - at.replace(tzinfo=UTC) for at in waiting) < timedelta(days=3)
        assert len(handled) > 50
        assert all(
            (kind, user is None)
            in {("reply", False), ("no_reply_needed", False), ("automatic", True)}
            for kind, user in handled
        )
    engine.dispose()


def test_the_first_scheduler_pass_after_seeding_sends_no_seeded_text_again(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    seed_demo(url, NOW)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    transport = SimulatedTransport()
    config = Config(database_url=url, demo=True, testing=True)

    summary = simulated_tick(sessions, transport, config, NOW)

    assert summary.plan.created == 0  # the seed already planned everyone
    assert transport.sent  # today's due check-ins and reminders do go out
    with sessions() as session:
        rows = session.execute(
            select(
                OutboundMessage.participant_id, OutboundMessage.purpose, OutboundMessage.send_after
            ).where(OutboundMessage.purpose.in_(("welcome", "checkin")))
        ).all()
        assert len(rows) == len(set(rows)), "a seeded welcome or check-in was sent again"
        welcomes = session.scalars(
            select(PlannedContact).where(
                PlannedContact.kind == "welcome", PlannedContact.send_after < NOW
            )
        ).all()
        assert welcomes and {c.state for c in welcomes} == {"sent"}
    engine.dispose()


def test_the_demo_worker_ticks_in_the_background_and_stops_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    seed_demo(url, NOW)
    engine = make_engine(url)
    transport = SimulatedTransport()
    worker = DemoWorker(
        make_session_factory(engine),
        transport,
        Config(database_url=url, demo=True, testing=True),
        interval_seconds=3600,
        clock=lambda: NOW,
    )
    worker.start()
    try:
        assert _wait_for(lambda: worker.ticks >= 1)
    finally:
        worker.stop()
    assert not worker._thread.is_alive()
    assert worker.last is not None and worker.last.now == NOW and worker.last.send.sent > 0
    assert len(transport.sent) == worker.last.send.sent
    with make_session_factory(engine)() as session:  # the dashboard shows no stale banner
        assert worker_state(session, NOW).last_pass_at == NOW
    engine.dispose()


def _free_port() -> int:
    for port in range(5820, 5850):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 5820-5849")


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_checkin_demo_prints_the_url_and_logins_that_work(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """The whole demo in a subprocess, with Twilio credentials set and TWILIO_API_BASE pointing
    at a fake Twilio that records every request: the web app, the simulator (a crisis text
    through the signed webhook, a scheduler pass) and the background worker all run, and the
    fake Twilio receives nothing."""
    with FakeTwilio(_free_port()) as twilio:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # this tree's code
        # A real program's database in DATABASE_URL: the demo must leave it alone.
        real = f"sqlite:///{tmp_path / 'real.sqlite3'}"
        shutil.copy(sqlite_template, tmp_path / "real.sqlite3")
        _a_real_program(real)
        real_before = (tmp_path / "real.sqlite3").read_bytes()
        env["DATABASE_URL"] = real
        env["TWILIO_ACCOUNT_SID"] = "AC" + "1" * 32  # credentials set: still never called
        env["TWILIO_AUTH_TOKEN"] = "x" * 32
        env["TWILIO_FROM_NUMBER"] = "+12025550100"
        env["TWILIO_API_BASE"] = twilio.url
        checkin = Path(sys.executable).with_name("checkin")
        log_path = tmp_path / "demo.log"
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                [str(checkin), "demo", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
            try:
                _drive_the_demo(process, port, tmp_path, log_path)
            finally:
                # SIGTERM takes the same path as Ctrl-C (SIGINT is ignored by a child of a
                # test run started as a background job: it inherits SIG_IGN).
                process.send_signal(signal.SIGTERM)
                try:
                    assert process.wait(timeout=20) == 0  # web app and worker stopped
                finally:
                    if process.poll() is None:
                        process.kill()
            assert process.stdout is not None
            assert process.stdout.read().rstrip().endswith("Demo stopped.")
        assert twilio.received == []
        assert (tmp_path / "real.sqlite3").read_bytes() == real_before


def _drive_the_demo(process: subprocess.Popen[str], port: int, tmp_path: Path, log: Path) -> None:
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Simulated transport"):
            break
    assert lines[0] == f"Dashboard: http://127.0.0.1:{port}/"
    logins = [line.split(" ") for line in lines[1:6]]
    assert [role for role, _, _ in logins] == ["admin", "coordinator", "coach", "coach", "coach"]
    assert all(re.fullmatch(r"[^@ ]+@[^@ ]+", email) for _, email, _ in logins)
    assert (tmp_path / "instance" / "demo.sqlite3").exists()

    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    assert _wait_for(healthy)
    browser = requests.Session()
    page = browser.get(f"{base}/login", timeout=5).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    _, email, password = logins[1]
    signed_in = browser.post(
        f"{base}/login",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
        timeout=10,
    )
    assert signed_in.status_code == 200 and "Sign out" in signed_in.text
    reports = browser.get(f"{base}/reports", timeout=10)
    assert reports.status_code == 200 and "<svg" in reports.text

    simulator = browser.get(f"{base}/simulator", timeout=10)
    assert simulator.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', simulator.text)
    chosen = re.search(r'name="participant_id" value="(\d+)"', simulator.text)
    assert token and chosen
    crisis = browser.post(
        f"{base}/simulator/send",
        data={
            "csrf_token": token.group(1),
            "participant_id": chosen.group(1),
            "body": "I want to kill myself",
        },
        timeout=10,
    )
    assert "The bot answered at once:" in crisis.text and "988" in crisis.text
    tick = browser.post(
        f"{base}/simulator/tick",
        data={"csrf_token": token.group(1), "participant_id": chosen.group(1)},
        timeout=30,
    )
    assert "Scheduler pass done: " in tick.text
    # The background worker ticks too (its first pass runs at start-up).
    assert _wait_for(lambda: '"event": "demo.tick"' in log.read_text())


# ---------------------------------------------------------------------------------------------
# The demo cannot touch real data (issue 17.1; DESIGN.md, Precise rules)


def _row_counts(url: str) -> dict[str, int]:
    """Every table's row count, and the schema revision: what "nothing written" compares."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            counts = {
                table.name: conn.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
            counts["alembic_version"] = len(
                conn.execute(text("SELECT version_num FROM alembic_version")).all()
            )
    finally:
        engine.dispose()
    return counts


def _a_real_program(url: str) -> None:
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        make_user(session, NOW, email="real.coach@program.org")
        make_participant(session, NOW, external_id="REAL-1")
    engine.dispose()


def test_the_demo_ignores_database_url_in_the_environment_and_dotenv(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _a_real_program(database_url)
    before = _row_counts(database_url)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"DATABASE_URL={database_url}\n")
    monkeypatch.setenv("DATABASE_URL", database_url)

    config, logins = prepare_demo("127.0.0.1", 5099, None, NOW)

    assert config.database_url == f"sqlite:///{Path('instance') / 'demo.sqlite3'}"
    assert (tmp_path / "instance" / "demo.sqlite3").exists() and len(logins) == 5
    assert _row_counts(database_url) == before


@pytest.mark.parametrize("what", ["users", "participants", "both"])
def test_the_demo_refuses_a_database_with_people_it_did_not_create_and_writes_nothing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    engine = make_engine(database_url)
    with make_session_factory(engine).begin() as session:
        if what in ("users", "both"):
            make_user(session, NOW, email="real.coach@program.org")
        if what in ("participants", "both"):
            make_participant(session, NOW, external_id="REAL-1")
    engine.dispose()
    before = _row_counts(database_url)
    monkeypatch.chdir(tmp_path)

    with pytest.raises(DemoError) as refused:
        prepare_demo("127.0.0.1", 5099, database_url, NOW)

    assert "did not create" in str(refused.value) and "Nothing was written" in str(refused.value)
    assert _row_counts(database_url) == before
    assert not (tmp_path / "instance").exists()


def test_checkin_demo_with_database_url_of_a_used_database_exits_1_and_writes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """As a user runs it: the command's exit code and message, and the database unchanged (on
    SQLite, byte for byte)."""
    _a_real_program(database_url)
    before = _row_counts(database_url)
    sqlite_file = make_url(database_url).database if database_url.startswith("sqlite") else None
    before_bytes = Path(sqlite_file).read_bytes() if sqlite_file else b""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--port", "5099", "--database-url", database_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stderr
    assert "refusing" in result.stderr and "did not create" in result.stderr
    assert "Traceback" not in result.stderr and "Dashboard:" not in result.stdout
    assert _row_counts(database_url) == before
    if sqlite_file:
        assert Path(sqlite_file).read_bytes() == before_bytes


def test_the_demo_refuses_a_database_of_another_application(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    before = path.read_bytes()

    with pytest.raises(DemoError) as refused:
        prepare_demo("127.0.0.1", 5099, f"sqlite:///{path}", NOW)

    assert "not a checkin database" in str(refused.value)
    assert path.read_bytes() == before


def test_a_second_demo_run_on_its_own_database_seeds_it_again(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    prepare_demo("127.0.0.1", 5099, database_url, NOW)
    first = _row_counts(database_url)

    _, logins = prepare_demo("127.0.0.1", 5099, database_url, NOW)

    assert len(logins) == 5
    assert _row_counts(database_url) == first  # emptied and seeded again, not doubled
    # The default file is re-created each time, too.
    prepare_demo("127.0.0.1", 5099, None, NOW)
    prepare_demo("127.0.0.1", 5099, None, NOW)
    assert _row_counts(f"sqlite:///{tmp_path / 'instance' / 'demo.sqlite3'}")["users"] == 5


def test_the_demo_refuses_its_own_database_once_someone_added_a_participant(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    prepare_demo("127.0.0.1", 5099, database_url, NOW)
    engine = make_engine(database_url)
    with make_session_factory(engine).begin() as session:
        make_participant(session, NOW, external_id="ADDED-1", phone="+12025559999")
    engine.dispose()
    before = _row_counts(database_url)

    with pytest.raises(DemoError, match="0 user\\(s\\) and 1 participant\\(s\\)"):
        prepare_demo("127.0.0.1", 5099, database_url, NOW)

    assert _row_counts(database_url) == before
