"""A sent check-in's "reply by" expectation: on PostgreSQL made by the sender in the commit
that records the text as sent (bot.services.expectations.create_reply_expectations), the
same row the sweep's create_expectations would make, which then finds nothing left to do."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Expectation, OutboundMessage
from bot.services.expectations import create_expectations
from bot.services.settings import get_setting, set_setting
from bot.transport.simulated import SimulatedTransport
from scheduler.plan import plan
from scheduler.send import send_due
from scheduler.sweep import sweep
from scheduler.tick import tick
from tests.factories import make_participant
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = utc("2026-03-03T15:05:00Z")  # 10:05 EST on day 1: each person's welcome and day 1


def _people(sessions: sessionmaker[Session], count: int) -> None:
    with sessions.begin() as session:
        for _ in range(count):
            make_participant(session, ENROLLED, release_date=date(2026, 3, 2), enrolled_at=ENROLLED)
        plan(session, NOW)


def _expectations(session: Session) -> dict[int | None, tuple[object, ...]]:
    return {
        e.outbound_message_id: (e.participant_id, e.kind, e.due_at, e.state, e.created_at)
        for e in session.scalars(select(Expectation))
    }


@pytest.mark.postgres_only
def test_sent_checkins_have_the_sweeps_expectation_right_after_sending_and_the_sweep_adds_none(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
) -> None:
    # Batches of two: several outcome commits, in the background and not.
    _people(sessions, 5)
    counts = send_due(sessions, transport, config, NOW, worker_id="w:1", batch=2)
    with sessions() as session:
        checkins = set(
            session.scalars(
                select(OutboundMessage.id).where(
                    OutboundMessage.purpose == "checkin", OutboundMessage.status == "queued"
                )
            )
        )
        made = _expectations(session)
    assert len(checkins) == 5 and counts.sent == 10  # each person's welcome and day 1
    assert counts.expectations == 5
    assert set(made) == checkins  # none for the welcomes
    with sessions() as session:
        # What the sweep's own pass would have made for them, had the sender not.
        session.execute(delete(Expectation))
        assert create_expectations(session, NOW).reply == 5
        assert _expectations(session) == made
        session.rollback()
    with sessions() as session:
        swept = sweep(session, NOW, config)  # commits
        assert swept.created == 0
        assert _expectations(session) == made


def test_a_tick_counts_each_sent_checkins_expectation_once_when_sending_or_sweeping(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    _people(sessions, 3)
    summary = tick(sessions, transport, config, NOW, rate_limited=False)
    assert summary.send.sent == 6
    assert summary.send.expectations + summary.sweep["created"] == 3
    with sessions() as session:
        assert len(_expectations(session)) == 3
        [due] = {e.due_at for e in session.scalars(select(Expectation))}
    assert due == NOW + timedelta(hours=48)


@pytest.mark.postgres_only
def test_a_failure_to_make_expectations_while_recording_sends_still_records_them_sent(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
) -> None:
    # The record of what went out must not depend on the bookkeeping after it: left `sending`,
    # those texts would end `unknown` and be flagged, though they were sent.
    _people(sessions, 3)
    with sessions.begin() as session:
        escalation = get_setting(session, "escalation")
        set_setting(
            session,
            "escalation",
            {**escalation, "reply_window_hours": "unreadable"},
            now=NOW,
            user_id=None,
        )
    counts = send_due(sessions, transport, config, NOW, worker_id="w:1")
    assert counts.sent == 6 and counts.expectations == 0
    with sessions.begin() as session:
        set_setting(session, "escalation", escalation, now=NOW, user_id=None)  # mended
    with sessions() as session:
        statuses = set(session.scalars(select(OutboundMessage.status)))
        assert statuses == {"queued"}
        assert _expectations(session) == {}
        made = sweep(session, NOW, config)
    assert made.created == 3  # the sweep's pass is the safety net
