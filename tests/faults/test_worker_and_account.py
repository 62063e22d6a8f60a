"""A killed worker, a wrong Twilio token and the demo against a used database, on the private
cluster (issue 17.9): nothing lost, nothing sent twice, nothing written where it must not be."""

from __future__ import annotations

import collections
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Flag, OutboundMessage
from bot.services.outbox.claims import LEASE
from scheduler.send import HAND_AHEAD_SECONDS
from tests import test_demo
from tests.scheduler import test_account_errors
from tests.scheduler.fake_twilio import FakeTwilio
from tests.scheduler.test_exactly_once import KILLER, NOW, ROOT, _env, _seed

pytestmark = pytest.mark.faults

RATE = 4  # claims are marked handed 2 at a time (HAND_AHEAD_SECONDS of sending)


def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    fault_url: str, fault_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Killed right after Twilio accepted its first text: the claims it had handed over are
    `unknown` (flagged, never resent); the rest of its batch, never handed over, goes back to
    pending and is sent once by the next worker after the lease."""
    _seed(fault_sessions, 6)  # 12 due texts: welcome and day 1 for six people
    with FakeTwilio() as twilio:
        env = _env(fault_url, twilio.url, rate=RATE)
        killed = subprocess.run(
            [sys.executable, "-c", KILLER, "after_accepted", NOW.isoformat()],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert killed.returncode == -9, killed.stderr
        for later in (NOW + timedelta(minutes=1), NOW + LEASE + timedelta(minutes=1)):
            run = subprocess.run(
                [str(Path(sys.executable).parent / "checkin"), "tick", "--now", later.isoformat()],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert run.returncode == 0, run.stderr
        arrivals = collections.Counter((f["To"], f["Body"]) for f in twilio.received)
    with fault_sessions() as session:
        rows = session.scalars(select(OutboundMessage)).all()
        flags = session.scalars(select(Flag.reason)).all()
    statuses = collections.Counter(r.status for r in rows)
    handed_together = max(1, int(RATE * HAND_AHEAD_SECONDS))
    assert len(rows) == 12 and set(statuses) <= {"queued", "unknown"}  # nothing lost
    assert statuses["unknown"] == handed_together  # only what was handed over, not the batch
    assert flags == ["delivery_unknown"] * handed_together
    assert max(arrivals.values()) == 1  # nothing twice
    assert sum(arrivals.values()) == statuses["queued"] + 1  # + the one accepted, then killed


def test_a_wrong_token_stops_sending_and_it_resumes_once_fixed(
    fault_config: Config, fault_sessions: sessionmaker[Session]
) -> None:
    test_account_errors.test_a_wrong_token_leaves_messages_pending_flags_once_and_sending_resumes(
        fault_config, fault_sessions, NOW
    )


def test_the_demo_refuses_a_used_database_and_writes_nothing(
    fault_url: str, tmp_path: Path
) -> None:
    test_demo.test_checkin_demo_with_database_url_of_a_used_database_exits_1_and_writes_nothing(
        fault_url, tmp_path
    )
