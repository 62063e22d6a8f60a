"""Properties of expectations and the sweep over random timelines of check-ins, replies,
opt-outs and sweeps; and two sweeps at once on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import (
    Expectation,
    Flag,
    FlagEvent,
    InboundMessage,
    OutboundMessage,
    Participant,
)
from bot.services.expectations import LOOKBACK, cancel_for_participant, on_participant_reply
from bot.services.flags import raise_flag
from scheduler.sweep import sweep
from tests.factories import make_participant, make_sent_message

WINDOW = timedelta(hours=48)
_PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _wipe(session: Session) -> None:
    session.rollback()
    for model in (Expectation, FlagEvent, Flag, InboundMessage, OutboundMessage, Participant):
        session.execute(delete(model))
    session.commit()


def _stop(session: Session, participant: Participant, now: datetime) -> None:
    """What inbound does on STOP (issue 4); repeated here so the property does not depend on
    the webhook: status, cancel expectations, an `opted_out` info flag."""
    participant.status = "opted_out"
    participant.opted_out_at = now
    cancel_for_participant(session, participant.id, now)
    raise_flag(session, reason="opted_out", severity="info", now=now, participant_id=participant.id)


# An event: (hour offset, participant index, what).
events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=24 * 8),
        st.integers(min_value=0, max_value=2),
        st.sampled_from(["checkin", "checkin", "reply", "sweep", "sweep", "stop"]),
    ),
    max_size=25,
)


@_PROPERTY
@given(timeline=events, final_hours=st.integers(min_value=0, max_value=24 * 12))
def test_every_expectation_ends_satisfied_flagged_or_pending_before_its_deadline(
    session: Session,
    now: datetime,
    config: Config,
    timeline: list[tuple[int, int, str]],
    final_hours: int,
) -> None:
    _wipe(session)
    people = [make_participant(session, now) for _ in range(3)]
    session.commit()
    replies: dict[int, list[datetime]] = {p.id: [] for p in people}
    stopped_at: dict[int, datetime] = {}
    last_sweep = None
    sweeps: list[datetime] = []
    for hours, index, what in sorted(timeline, key=lambda e: e[0]):
        at = now + timedelta(hours=hours)
        person = people[index]
        if what == "checkin" and person.status == "active":
            make_sent_message(session, person, at)
        elif what == "reply":
            session.add(
                InboundMessage(
                    message_sid=f"SM{len(replies[person.id])}-{person.id}-{hours}",
                    from_address=person.address,
                    to_address="+15550100",
                    channel="sms",
                    body="fine",
                    raw_form={},
                    participant_id=person.id,
                    received_at=at,
                )
            )
            replies[person.id].append(at)
            on_participant_reply(session, person.id, at)
        elif what == "stop" and person.status == "active":
            _stop(session, person, at)
            stopped_at[person.id] = at
        elif what == "sweep":
            session.commit()
            sweep(session, at, config)
            last_sweep = at
            sweeps.append(at)
        session.commit()
    end = now + timedelta(hours=max([final_hours] + [h for h, _, _ in timeline]))
    sweep(session, end, config)
    last_sweep = end
    sweeps.append(end)
    session.expire_all()

    messages = {m.id: m for m in session.scalars(select(OutboundMessage))}
    for e in session.scalars(select(Expectation)):
        sent_at = messages[e.outbound_message_id].sent_at if e.outbound_message_id else None
        assert sent_at is not None
        if e.state == "pending":
            assert e.due_at > last_sweep
        elif e.state == "missed":
            flag = session.get(Flag, e.flag_id) if e.flag_id else None
            assert flag is not None and flag.reason == "no_reply"
            # Nobody answered between the check-in and its deadline.
            assert not any(sent_at <= r <= e.due_at for r in replies[e.participant_id])
        elif e.state == "satisfied":
            assert any(r >= sent_at for r in replies[e.participant_id])
        else:
            assert e.state == "cancelled" and e.participant_id in stopped_at
        if e.participant_id in stopped_at:
            # No expectation is made for a text after STOP; those before it end at STOP.
            assert e.created_at <= stopped_at[e.participant_id] or e.state == "cancelled"
            assert e.state != "missed" or e.due_at <= stopped_at[e.participant_id]
    # Every sent check-in to a person still active has its expectation, once a sweep has run
    # within LOOKBACK of its sending (older texts are not looked at, by design). A sweep at the
    # very hour of the text may have run just before it (events at one hour keep their order).
    expected_ids = {
        m.id
        for m in messages.values()
        if m.participant_id not in stopped_at
        and m.sent_at is not None
        and any(m.sent_at < t <= m.sent_at + LOOKBACK for t in sweeps)
    }
    made = set(session.scalars(select(Expectation.outbound_message_id)))
    assert expected_ids <= made
    for pid in stopped_at:
        flag = session.scalars(
            select(Flag).where(Flag.participant_id == pid, Flag.reason == "opted_out")
        ).one()
        assert flag.severity == "info"
        assert (
            session.scalar(
                select(func.count())
                .select_from(Expectation)
                .where(Expectation.participant_id == pid, Expectation.state == "pending")
            )
            == 0
        )
    _assert_one_unresolved_flag_per_participant_and_reason(session)


def _assert_one_unresolved_flag_per_participant_and_reason(session: Session) -> None:
    twins = session.execute(
        select(Flag.participant_id, Flag.reason, func.count())
        .where(Flag.state != "resolved")
        .group_by(Flag.participant_id, Flag.reason)
        .having(func.count() > 1)
    ).all()
    assert twins == []


@pytest.mark.postgres_only
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(misses=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=40))
def test_two_sweeps_at_once_never_open_twin_flags(
    sessions: sessionmaker[Session],
    now: datetime,
    config: Config,
    misses: list[int],
) -> None:
    with sessions() as session:
        _wipe(session)
        for count in misses:
            person = make_participant(session, now)
            for k in range(count):
                make_sent_message(session, person, now + timedelta(minutes=k))
        session.commit()
    due = now + timedelta(days=3)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with sessions() as own:
                barrier.wait()
                sweep(own, due, config, batch_size=7)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sessions() as session:
        _assert_one_unresolved_flag_per_participant_and_reason(session)
        states = session.scalars(select(Expectation.state)).all()
        assert len(states) == sum(misses) and set(states) == {"missed"}
        flags = session.scalars(select(Flag).where(Flag.reason == "no_reply")).all()
        assert len(flags) == len(misses)
        # Each miss counted exactly once, on the one flag.
        assert sorted(f.occurrences for f in flags) == sorted(misses)
        assert {f.severity for f in flags if f.occurrences >= 2} <= {"high"}
