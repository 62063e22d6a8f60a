"""`checkin demo`: the seeded program has something on every page, and the command prints the
URL and one line per login (DESIGN.md, Precise rules)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from bot.config import Config
from bot.db import make_engine, make_session_factory
from bot.demo import DemoWorker, seed_demo, simulated_tick
from bot.models import (
    Appointment,
    Flag,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
    User,
)
from bot.transport.simulated import SimulatedTransport
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
def test_checkin_demo_prints_the_url_and_logins_that_work(tmp_path: Path) -> None:
    """The whole demo in a subprocess, with Twilio credentials set and TWILIO_API_BASE pointing
    at a fake Twilio that records every request: the web app, the simulator (a crisis text
    through the signed webhook, a scheduler pass) and the background worker all run, and the
    fake Twilio receives nothing."""
    with FakeTwilio(_free_port()) as twilio:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
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
