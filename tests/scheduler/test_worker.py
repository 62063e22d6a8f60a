"""`checkin worker` as a real process: SIGTERM finishes the current step and exits 0; its
urgent lane sends a crisis reply queued in the middle of a tick's backlog, and stops with it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.db import make_engine, make_session_factory, upgrade_to_head
from bot.models import OutboundMessage
from bot.services.heartbeat import worker_state
from bot.services.outbox import enqueue
from tests.factories import make_participant
from tests.services.test_heartbeat import PingServer

CHECKIN = str(Path(sys.executable).parent / "checkin")
# The subprocess runs this tree's code, not whichever copy the venv has installed.
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])
COUNT = 40


def _events(stderr_lines: list[str], name: str) -> list[dict[str, Any]]:
    """Our log lines are `<date> <time> <LEVEL> <logger> <one JSON object>`."""
    found = []
    for line in stderr_lines:
        parts = line.split(" ", 4)
        if len(parts) == 5 and parts[4].startswith("{"):
            event = json.loads(parts[4])
            if event.get("event") == name:
                found.append(event)
    return found


def test_sigterm_mid_run_finishes_the_current_step_and_exits_zero(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)  # the worker reads the real clock
    with sessions.begin() as session:
        for i in range(COUNT):
            participant = make_participant(
                session,
                now,
                phone=f"+1312555{8000 + i:04d}",
                release_date=date(2030, 1, 1),  # nothing planned is due
                enrolled_at=now,
            )
            # Routine (a late webhook reply, not an urgent purpose: the tick sends it, not the
            # urgent lane) and sent in quiet hours too, so the test does not depend on the hour.
            enqueue(
                session,
                idempotency_key=f"worker-test:{i}",
                purpose="reply",
                channel="sms",
                to_address=participant.phone,
                body="x",
                now=now,
                participant_id=participant.id,
                ignore_quiet_hours=True,
            )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_"))}
    # No Twilio credentials: the simulated transport. 4/s: 40 messages would take 10 s.
    env.update(
        PYTHONPATH=SOURCE_ROOT,
        DATABASE_URL=url,
        SEND_RATE_PER_SECOND="4",
        PUBLIC_BASE_URL="https://checkin.example.org",
        LOG_LEVEL="INFO",
    )
    proc = subprocess.Popen(
        [CHECKIN, "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        if '"transport.simulated_send"' in line:
            break  # the first tick is sending
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=30)
    lines.extend(rest.splitlines())
    assert proc.returncode == 0, "\n".join(lines)
    ticks = _events(lines, "worker.tick")
    assert len(ticks) == 1  # one structured line per tick, with its counts
    assert ticks[0]["stopped"] is True
    sent = len(_events(lines, "transport.simulated_send"))
    assert ticks[0]["send"]["sent"] == sent
    assert 1 <= sent < COUNT  # stopped mid-run, not after everything went
    assert _events(lines, "worker.stopped")
    with sessions() as session:
        statuses = list(session.scalars(select(OutboundMessage.status)))
    # The claims it never handed to the transport were given back: nothing is left in
    # `sending` (which would become `unknown` and flag people), nothing was lost.
    assert statuses.count("queued") == sent
    assert statuses.count("pending") == COUNT - sent
    engine.dispose()


def test_each_worker_pass_records_the_heartbeat_and_fetches_the_ping_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    upgrade_to_head(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_"))}
    started = datetime.now(UTC)
    with PingServer().running() as ping:
        env.update(
            PYTHONPATH=SOURCE_ROOT,
            DATABASE_URL=url,
            PUBLIC_BASE_URL="https://checkin.example.org",
            WORKER_PING_URL=ping.url,
        )
        proc = subprocess.Popen(
            [CHECKIN, "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert ping.got.wait(60), "the worker's first pass did not fetch WORKER_PING_URL"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert ping.paths[0] == "/ping/abc"
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        state = worker_state(session, datetime.now(UTC))
    engine.dispose()
    assert state.health == "ok"
    assert state.last_pass_at is not None and state.last_pass_at >= started


def test_the_urgent_lane_sends_a_crisis_reply_queued_mid_backlog_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        people = [
            make_participant(
                session,
                now,
                phone=f"+1312555{8100 + i:04d}",
                release_date=date(2030, 1, 1),
                enrolled_at=now,
            )
            for i in range(COUNT + 1)
        ]
        for i, participant in enumerate(people[:COUNT]):
            enqueue(
                session,
                idempotency_key=f"backlog:{i}",
                purpose="reply",
                channel="sms",
                to_address=participant.phone,
                body="x",
                now=now,
                participant_id=participant.id,
                ignore_quiet_hours=True,
            )
        in_crisis = people[COUNT].id
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_"))}
    env.update(
        DATABASE_URL=url,
        SEND_RATE_PER_SECOND="4",  # the backlog would take 10 s
        PUBLIC_BASE_URL="https://checkin.example.org",
        LOG_LEVEL="INFO",
    )
    proc = subprocess.Popen(
        [CHECKIN, "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []

    def wait_for(event: str) -> None:
        while True:
            line = lines.get(timeout=60)
            assert line is not None, "\n".join(seen)
            seen.append(line)
            if f'"{event}"' in line:
                return

    try:
        wait_for("transport.simulated_send")  # the tick is sending the backlog
        with sessions.begin() as session:
            enqueue(
                session,
                idempotency_key="crisis:mid-backlog",
                purpose="crisis_reply",
                channel="sms",
                to_address=people[COUNT].phone,
                body="x",
                now=datetime.now(UTC),
                participant_id=in_crisis,
                ignore_quiet_hours=True,
            )
        wait_for("urgent.sent")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    while (line := lines.get_nowait()) is not None:
        seen.append(line)
    assert proc.returncode == 0, "\n".join(seen)
    assert [e["sent"] for e in _events(seen, "urgent.sent")] == [1]
    assert len(_events(seen, "urgent.started")) == 1
    stopped = _events(seen, "urgent.stopped")
    assert len(stopped) == 1 and stopped[0]["sent"] == 1
    ticks = _events(seen, "worker.tick")
    assert len(ticks) == 1 and ticks[0]["stopped"] is True
    assert ticks[0]["send"]["sent"] < COUNT  # the crisis reply did not wait for the backlog
    with sessions() as session:
        crisis = session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "crisis_reply")
        ).one()
        statuses = list(session.scalars(select(OutboundMessage.status)))
    assert crisis.status == "queued"
    assert crisis.claimed_by is not None and crisis.claimed_by.endswith(":urgent")
    assert "sending" not in statuses
    engine.dispose()
