"""Expectations are made from sent texts, satisfied by replies and confirmations, cancelled by
opt-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import make_engine, make_session_factory
from bot.models import Expectation, Flag, FlagEvent
from bot.services.expectations import (
    cancel_for_participant,
    create_expectations,
    on_appointment_confirmed,
    on_participant_reply,
)
from bot.services.flags import raise_flag
from bot.services.settings import set_setting
from tests.factories import (
    make_appointment,
    make_participant,
    make_sent_message,
    make_sent_reminder,
)


def _expectations(session: Session) -> list[Expectation]:
    session.expire_all()
    return list(session.scalars(select(Expectation).order_by(Expectation.id)))


def test_sent_checkin_expects_a_reply_within_the_reply_window(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    message = make_sent_message(session, participant, now - timedelta(hours=1))
    counts = create_expectations(session, now)
    [expectation] = _expectations(session)
    assert counts.reply == 1
    assert (expectation.kind, expectation.state) == ("reply", "pending")
    assert expectation.outbound_message_id == message.id
    assert expectation.due_at == message.sent_at + timedelta(hours=48)


def test_reply_window_is_read_from_the_settings_at_run_time(
    session: Session, now: datetime
) -> None:
    set_setting(session, "escalation", {"reply_window_hours": 24}, now=now, user_id=None)
    participant = make_participant(session, now)
    message = make_sent_message(session, participant, now)
    create_expectations(session, now)
    [expectation] = _expectations(session)
    assert expectation.due_at == message.sent_at + timedelta(hours=24)


def test_welcome_and_unsent_or_failed_texts_create_no_expectation(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now, purpose="welcome")
    unsent = make_sent_message(session, participant, now, status="pending")
    unsent.sent_at = None
    make_sent_message(session, participant, now, status="failed")
    assert create_expectations(session, now).reply == 0
    assert _expectations(session) == []


def test_creating_twice_makes_no_twins(session: Session, now: datetime) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now)
    create_expectations(session, now)
    again = create_expectations(session, now + timedelta(minutes=1))
    assert again.reply == 0
    assert len(_expectations(session)) == 1


def test_first_reminder_expects_confirmation_a_day_before_and_later_ones_add_none(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    starts_at = now + timedelta(days=3)
    appointment = make_appointment(session, participant, starts_at, now)
    first = make_sent_reminder(session, appointment, now, "3d")
    create_expectations(session, now)
    make_sent_reminder(session, appointment, now + timedelta(days=2), "1d")
    create_expectations(session, now + timedelta(days=2))
    [expectation] = _expectations(session)
    assert (expectation.kind, expectation.state) == ("confirm", "pending")
    assert expectation.outbound_message_id == first.id
    assert expectation.appointment_id == appointment.id
    assert expectation.due_at == starts_at - timedelta(hours=24)


def test_reminder_sent_after_the_confirm_by_time_gives_half_the_time_left(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    appointment = make_appointment(session, participant, now + timedelta(hours=10), now)
    make_sent_reminder(session, appointment, now, "2h")
    create_expectations(session, now)
    [expectation] = _expectations(session)
    assert expectation.due_at == now + timedelta(hours=5)


def test_moved_appointment_gets_a_fresh_expectation_and_the_old_one_is_cancelled(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    appointment = make_appointment(session, participant, now + timedelta(days=3), now)
    make_sent_reminder(session, appointment, now, "3d")
    create_expectations(session, now)
    appointment.starts_at = now + timedelta(days=5)
    appointment.version = 2
    session.flush()
    later = now + timedelta(hours=2)
    make_sent_reminder(session, appointment, later, "3d")
    create_expectations(session, later)
    old, new = _expectations(session)
    assert (old.appointment_version, old.state) == (1, "cancelled")
    assert (new.appointment_version, new.state) == (2, "pending")
    assert new.due_at == now + timedelta(days=4)


def test_reply_satisfies_pending_replies_and_resolves_no_reply_with_an_event(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now - timedelta(hours=3))
    create_expectations(session, now)
    flag = raise_flag(
        session, reason="no_reply", severity="normal", now=now, participant_id=participant.id
    ).flag
    satisfied = on_participant_reply(session, participant.id, now + timedelta(minutes=5))
    session.commit()
    assert satisfied == 1
    assert [e.state for e in _expectations(session)] == ["satisfied"]
    assert (flag.state, flag.outcome) == ("resolved", "reached")
    kinds = session.scalars(
        select(FlagEvent.kind).where(FlagEvent.flag_id == flag.id).order_by(FlagEvent.id)
    ).all()
    assert kinds == ["opened", "auto_resolved"]


def test_reply_leaves_other_reasons_open(session: Session, now: datetime) -> None:
    participant = make_participant(session, now)
    crisis = raise_flag(
        session, reason="crisis", severity="urgent", now=now, participant_id=participant.id
    ).flag
    on_participant_reply(session, participant.id, now)
    assert crisis.state == "open"


def test_confirmation_satisfies_and_resolves_unconfirmed_appointment(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    appointment = make_appointment(session, participant, now + timedelta(days=3), now)
    make_sent_reminder(session, appointment, now)
    create_expectations(session, now)
    flag = raise_flag(
        session,
        reason="unconfirmed_appointment",
        severity="normal",
        now=now,
        participant_id=participant.id,
    ).flag
    appointment.status = "confirmed"
    assert on_appointment_confirmed(session, appointment, now) == 1
    session.commit()
    assert [e.state for e in _expectations(session)] == ["satisfied"]
    assert session.get(Flag, flag.id).state == "resolved"  # type: ignore[union-attr]


def test_opt_out_cancels_pending_expectations_and_no_new_ones_are_made(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now - timedelta(hours=1))
    create_expectations(session, now)
    participant.status = "opted_out"
    participant.opted_out_at = now
    assert cancel_for_participant(session, participant.id, now) == 1
    # A check-in that was already on its way when STOP came in.
    make_sent_message(session, participant, now + timedelta(seconds=1))
    assert create_expectations(session, now + timedelta(minutes=1)).reply == 0
    assert [e.state for e in _expectations(session)] == ["cancelled"]


@pytest.mark.postgres_only
def test_the_reply_window_is_exact_hours_across_a_dst_change_whatever_the_servers_timezone(
    database_url: str,
) -> None:
    # PostgreSQL adds an interval's days as calendar days in the session's TimeZone (the
    # server's default unless set): with America/New_York, 48 h as "2 days" across the spring
    # change would be 47 h. The due time must be the sent time plus the window's hours, as on
    # SQLite (the portable path computes it in Python).
    engine = make_engine(database_url, connect_args={"options": "-c TimeZone=America/New_York"})
    try:
        with make_session_factory(engine).begin() as session:
            sent_at = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)  # the clocks go forward on the 8th
            participant = make_participant(session, sent_at - timedelta(days=3))
            message = make_sent_message(session, participant, sent_at)
            assert create_expectations(session, sent_at + timedelta(hours=1)).reply == 1
            [expectation] = _expectations(session)
            assert expectation.outbound_message_id == message.id
            assert expectation.due_at == sent_at + timedelta(hours=48)
    finally:
        engine.dispose()
