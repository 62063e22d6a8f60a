"""Exactly once, proven with real processes: two `checkin tick` at once, and workers killed
with SIGKILL between claim and send and after the provider accepted but before commit."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.models import Flag, OutboundMessage
from bot.services.outbox.claims import LEASE
from tests.factories import make_participant
from tests.scheduler.fake_twilio import FakeTwilio
from tests.scheduler.helpers import utc

ROOT = Path(__file__).resolve().parents[2]
CHECKIN = str(Path(sys.executable).parent / "checkin")
ACCOUNT = "AC" + "0" * 32
# 10:30 EST on 2026-03-03: welcome and day-1 check-in due for everyone released 2026-03-02.
NOW = utc("2026-03-03T15:30:00Z")


def _env(database_url: str, api_base: str, rate: int = 1000) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_"))}
    env.update(
        DATABASE_URL=database_url,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_AUTH_TOKEN="token",
        TWILIO_FROM_NUMBER="+15550100000",
        TWILIO_API_BASE=api_base,
        PUBLIC_BASE_URL="https://checkin.example.org",
        SEND_RATE_PER_SECOND=str(rate),
        PROGRAM_TIMEZONE="America/New_York",
    )
    return env


def _seed(sessions: sessionmaker[Session], count: int) -> None:
    enrolled = datetime(2026, 3, 1, 12, 0, tzinfo=NOW.tzinfo)
    with sessions.begin() as session:
        for _ in range(count):
            make_participant(session, enrolled, release_date=date(2026, 3, 2), enrolled_at=enrolled)


@pytest.mark.postgres_only
# 1000/s: one batch of 500 holds every due contact. 20/s: batches of 10, each sent while the
# next is read ahead (scheduler/enqueue.py, ReadAhead) by both processes at once.
@pytest.mark.parametrize("rate", [1000, 20])
def test_two_tick_processes_at_once_send_each_due_message_exactly_once(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path, rate: int
) -> None:
    _seed(sessions, 40)
    with FakeTwilio() as twilio:
        env = _env(database_url, twilio.url, rate)
        procs = [
            subprocess.Popen(
                [CHECKIN, "tick", "--now", NOW.isoformat()],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        counts = collections.Counter(twilio.to_addresses())
    assert len(counts) == 40
    assert set(counts.values()) == {2}  # the welcome and the day-1 check-in, each once
    with sessions() as session:
        sent = session.scalar(select(func.count()).where(OutboundMessage.provider_sid.is_not(None)))
    assert sent == 80
    # Both processes ran a full pass and printed their summary.
    assert all("tick 2026-03-03T15:30:00Z" in out for out, _ in outputs)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from bot.config import load_config
    from bot.db import make_engine, make_session_factory
    from bot.transport.twilio import TwilioTransport
    from scheduler.tick import tick

    when = sys.argv[1]
    config = load_config(env_file=None)
    real = TwilioTransport.from_config(config)

    class Killing:
        name = "killing"

        def send(self, request):
            if when == "before_send":
                os.kill(os.getpid(), signal.SIGKILL)
            result = real.send(request)  # Twilio accepted it ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and we die before the commit.
            return result

    sessions = make_session_factory(make_engine(config.database_url))
    tick(sessions, Killing(), config, datetime.fromisoformat(sys.argv[2]))
    """
)


def _run_a_worker_killed(env: dict[str, str], when: str) -> None:
    """A tick at NOW in a process that SIGKILLs itself `when` (see KILLER)."""
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, when, NOW.isoformat()],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr


def _tick_a_minute_and_a_lease_later(env: dict[str, str], cwd: Path) -> None:
    """`checkin tick` a minute after NOW, then once the dead worker's claim lease is over."""
    for later in (NOW + timedelta(minutes=1), NOW + LEASE + timedelta(minutes=1)):
        run = subprocess.run(
            [CHECKIN, "tick", "--now", later.isoformat()],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("when", ["before_send", "after_accepted"])
def test_worker_killed_mid_send_never_causes_a_second_send(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path, when: str
) -> None:
    _seed(sessions, 1)
    with FakeTwilio() as twilio:
        env = _env(database_url, twilio.url)
        _run_a_worker_killed(env, when)
        expected = 0 if when == "before_send" else 1
        assert len(twilio.received) == expected
        _tick_a_minute_and_a_lease_later(env, tmp_path)
        # The other due message (welcome or day 1) goes; the one in flight is never resent.
        assert len(twilio.received) == expected + 1
    with sessions() as session:
        statuses = sorted(session.scalars(select(OutboundMessage.status)))
        assert statuses == ["queued", "unknown"]
        assert list(session.scalars(select(Flag.reason))) == ["delivery_unknown"]


@pytest.mark.postgres_only
@pytest.mark.parametrize("when", ["before_send", "after_accepted"])
def test_worker_killed_while_the_next_batch_is_read_ahead_never_causes_a_second_send(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path, when: str
) -> None:
    # 20/s: batches of 10. The first send dies with the next batch read ahead, inserted
    # `sending` in a transaction never committed: those contacts must simply stay due.
    _seed(sessions, 12)
    with FakeTwilio() as twilio:
        env = _env(database_url, twilio.url, rate=20)
        _run_a_worker_killed(env, when)
        _tick_a_minute_and_a_lease_later(env, tmp_path)
        counts = collections.Counter(twilio.to_addresses())
    with sessions() as session:
        statuses = collections.Counter(session.scalars(select(OutboundMessage.status)))
    # Every due contact got its one row (none lost with the rolled-back read-ahead); the
    # claimed batch in flight is `unknown` (never resent), everything else went once.
    assert statuses == {"queued": 14, "unknown": 10}  # 10: one batch at 20/s, not two
    assert sum(counts.values()) == statuses["queued"] + (when == "after_accepted")
    assert max(counts.values()) <= 2
