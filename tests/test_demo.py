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
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from bot.db import make_engine, make_session_factory
from bot.demo import seed_demo
from bot.models import Appointment, Flag, InboundMessage, OutboundMessage, Participant, User

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


def _free_port() -> int:
    for port in range(5820, 5850):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 5820-5849")


@pytest.mark.slow
def test_checkin_demo_prints_the_url_and_logins_that_work(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env["TWILIO_ACCOUNT_SID"] = (
        "AC" + "1" * 32
    )  # credentials set: the demo still never calls Twilio
    env["TWILIO_AUTH_TOKEN"] = "x" * 32
    env["TWILIO_FROM_NUMBER"] = "+12025550100"
    checkin = Path(sys.executable).with_name("checkin")
    process = subprocess.Popen(
        [str(checkin), "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
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
        assert [role for role, _, _ in logins] == [
            "admin",
            "coordinator",
            "coach",
            "coach",
            "coach",
        ]
        assert all(re.fullmatch(r"[^@ ]+@[^@ ]+", email) for _, email, _ in logins)
        assert (tmp_path / "instance" / "demo.sqlite3").exists()

        base = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
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
        assert browser.get(f"{base}/simulator", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
