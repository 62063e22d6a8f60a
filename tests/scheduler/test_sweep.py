"""sweep(now) turns missed expectations into flags, one open flag per participant and reason,
and starts the ladder when a flag becomes high."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import Expectation, Flag, FlagEvent, InboundMessage, OutboundMessage, Participant
from bot.services.expectations import on_participant_reply
from bot.services.flags import acknowledge_flag
from bot.services.settings import set_setting
from scheduler.sweep import sweep
from tests.factories import (
    make_appointment,
    make_participant,
    make_sent_message,
    make_sent_reminder,
    make_user,
)

WINDOW = timedelta(hours=48)


def _flags(session: Session, reason: str | None = None) -> list[Flag]:
    session.expire_all()
    query = select(Flag).order_by(Flag.id)
    if reason:
        query = query.where(Flag.reason == reason)
    return list(session.scalars(query))


def _events(session: Session, flag: Flag) -> list[str]:
    return list(
        session.scalars(
            select(FlagEvent.kind).where(FlagEvent.flag_id == flag.id).order_by(FlagEvent.id)
        )
    )


def _inbound(
    session: Session, participant: Participant, at: datetime, *, waiting: bool = False
) -> None:
    """A text from the participant; unless `waiting`, one a coach has already answered (the
    tests about silence are not about the inbox)."""
    session.add(
        InboundMessage(
            message_sid=f"SM{participant.id}{int(at.timestamp())}",
            from_address=participant.address,
            to_address="+15550100",
            channel="sms",
            body="ok",
            raw_form={},
            participant_id=participant.id,
            received_at=at,
            processing_state="processed",
            needs_reply=waiting,
        )
    )
    session.flush()


def test_unanswered_checkin_opens_a_normal_no_reply_flag_at_its_deadline(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now)
    session.commit()
    early = sweep(session, now + WINDOW - timedelta(minutes=1), config)
    assert (early.created, early.missed) == (1, 0)
    assert _flags(session) == []
    counts = sweep(session, now + WINDOW, config)
    [flag] = _flags(session)
    assert counts.missed == 1 and counts.flags_opened == 1
    assert (flag.participant_id, flag.reason, flag.severity, flag.state) == (
        participant.id,
        "no_reply",
        "normal",
        "open",
    )
    [expectation] = session.scalars(select(Expectation)).all()
    assert (expectation.state, expectation.flag_id) == ("missed", flag.id)
    assert counts.pages == 0  # normal flags do not page


def test_second_miss_in_a_row_raises_the_same_flag_to_high_and_pages_the_coach(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now)
    participant = make_participant(session, now, coach_id=coach.id)
    make_sent_message(session, participant, now)
    make_sent_message(session, participant, now + timedelta(days=1))
    session.commit()
    sweep(session, now + WINDOW, config)
    counts = sweep(session, now + timedelta(days=1) + WINDOW, config)
    [flag] = _flags(session)
    assert (flag.severity, flag.occurrences) == ("high", 2)
    assert counts.flags_raised == 1 and counts.pages == 1
    assert _events(session, flag) == ["opened", "severity_raised", "paged"]
    page = session.scalars(select(OutboundMessage).where(OutboundMessage.purpose == "page")).one()
    assert page.user_id == coach.id and page.to_address == coach.phone


def test_two_misses_in_one_sweep_open_one_high_flag(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now)
    make_sent_message(session, participant, now + timedelta(hours=1))
    session.commit()
    counts = sweep(session, now + timedelta(days=5), config)
    [flag] = _flags(session)
    assert counts.missed == 2 and counts.flags_opened == 1
    assert (flag.severity, flag.occurrences) == ("high", 2)
    assert _events(session, flag)[:2] == ["opened", "severity_raised"]


def test_misses_before_high_is_read_from_the_settings(
    session: Session, now: datetime, config: Config
) -> None:
    set_setting(session, "escalation", {"misses_before_high": 3}, now=now, user_id=None)
    participant = make_participant(session, now)
    for day in range(2):
        make_sent_message(session, participant, now + timedelta(days=day))
    session.commit()
    sweep(session, now + timedelta(days=5), config)
    [flag] = _flags(session)
    assert (flag.severity, flag.occurrences) == ("normal", 2)


def test_a_reply_between_two_misses_starts_the_count_again(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now)
    session.commit()
    sweep(session, now + WINDOW, config)
    second_sent = now + timedelta(days=3)
    make_sent_message(session, participant, second_sent)
    session.commit()
    sweep(session, second_sent, config)
    _inbound(session, participant, second_sent + timedelta(hours=1))
    on_participant_reply(session, participant.id, second_sent + timedelta(hours=1))
    session.commit()
    third_sent = now + timedelta(days=6)
    make_sent_message(session, participant, third_sent)
    session.commit()
    sweep(session, third_sent + WINDOW, config)
    first, second = _flags(session, "no_reply")
    assert (first.state, first.outcome) == ("resolved", "reached")
    assert (second.state, second.severity) == ("open", "normal")


def test_a_reply_inbound_did_not_report_still_satisfies_the_expectation(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now)
    # The reply arrives before the sweep has even made the expectation.
    _inbound(session, participant, now + timedelta(minutes=3))
    session.commit()
    sweep(session, now + timedelta(minutes=5), config)
    counts = sweep(session, now + WINDOW, config)
    assert (counts.satisfied, counts.missed) == (1, 0)
    assert _flags(session) == []


def test_unconfirmed_appointment_opens_a_normal_flag_and_confirmed_one_does_not(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    quiet = make_appointment(session, participant, now + timedelta(days=3), now)
    confirmed = make_appointment(session, participant, now + timedelta(days=3), now)
    make_sent_reminder(session, quiet, now)
    make_sent_reminder(session, confirmed, now)
    session.commit()
    sweep(session, now, config)
    confirmed.status = "confirmed"
    session.commit()
    counts = sweep(session, now + timedelta(days=2), config)
    [flag] = _flags(session)
    assert (flag.reason, flag.severity) == ("unconfirmed_appointment", "normal")
    assert (counts.missed, counts.satisfied) == (1, 1)


def test_undelivered_checkin_is_cancelled_not_missed(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    message = make_sent_message(session, participant, now)
    session.commit()
    sweep(session, now, config)
    message.status = "undelivered"
    session.commit()
    counts = sweep(session, now + WINDOW, config)
    assert (counts.cancelled, counts.missed) == (1, 0)
    assert _flags(session) == []


def test_opted_out_participant_is_never_flagged_for_silence(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now)
    session.commit()
    sweep(session, now, config)
    # Opted out without the inbound path cancelling (e.g. a coordinator changed the status).
    participant.status = "opted_out"
    session.commit()
    counts = sweep(session, now + WINDOW, config)
    assert (counts.cancelled, counts.missed) == (1, 0)
    assert _flags(session) == []


def test_sweep_twice_at_the_same_instant_changes_nothing_the_second_time(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now)
    make_sent_message(session, participant, now)
    session.commit()
    sweep(session, now + WINDOW, config)
    again = sweep(session, now + WINDOW, config)
    assert (again.created, again.missed, again.flags_opened) == (0, 0, 0)
    assert session.scalar(select(func.count()).select_from(FlagEvent)) == 1


def test_a_backlog_is_swept_in_batches(session: Session, now: datetime, config: Config) -> None:
    participants = [make_participant(session, now) for _ in range(5)]
    for participant in participants:
        make_sent_message(session, participant, now)
    session.commit()
    counts = sweep(session, now + WINDOW, config, batch_size=2)
    assert counts.missed == 5
    assert len(_flags(session)) == 5


def test_acknowledged_flag_keeps_counting_misses_without_a_twin(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now)
    participant = make_participant(session, now, coach_id=coach.id)
    make_sent_message(session, participant, now)
    session.commit()
    sweep(session, now + WINDOW, config)
    [flag] = _flags(session)
    acknowledge_flag(session, flag, user_id=coach.id, now=now + WINDOW)
    make_sent_message(session, participant, now + timedelta(days=3))
    session.commit()
    sweep(session, now + timedelta(days=3) + WINDOW, config)
    [flag] = _flags(session)
    assert (flag.state, flag.severity, flag.occurrences) == ("acknowledged", "high", 2)
    # Acknowledged: someone is on it, so the raise does not page.
    assert (
        session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.purpose == "page")
        )
        == 0
    )


# --- texts waiting for a reply -----------------------------------------------------------------


def _waiting_text(session: Session, participant: Participant, at: datetime) -> None:
    _inbound(session, participant, at, waiting=True)


def test_a_text_waiting_longer_than_the_setting_raises_one_normal_unanswered_text_flag(
    session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    _waiting_text(session, person, now - timedelta(hours=23))
    session.commit()
    sweep(session, now, config)
    assert _flags(session, "unanswered_text") == []
    later = now + timedelta(hours=2)
    _waiting_text(session, person, later - timedelta(minutes=5))
    session.commit()
    sweep(session, later, config)
    sweep(session, later, config)  # idempotent
    [flag] = _flags(session, "unanswered_text")
    assert (flag.participant_id, flag.severity, flag.state) == (person.id, "normal", "open")
    assert _events(session, flag) == ["opened"]


def test_unanswered_text_hours_is_read_from_the_settings(
    session: Session, now: datetime, config: Config
) -> None:
    set_setting(
        session,
        "escalation",
        {"unanswered_text_hours": 4},
        now=now,
        user_id=None,
    )
    person = make_participant(session, now)
    _waiting_text(session, person, now - timedelta(hours=5))
    session.commit()
    sweep(session, now, config)
    assert [f.severity for f in _flags(session, "unanswered_text")] == ["normal"]


def test_after_48_hours_the_unanswered_text_flag_becomes_high_and_pages_the_coach(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now)
    person = make_participant(session, now, coach_id=coach.id)
    _waiting_text(session, person, now - timedelta(hours=30))
    session.commit()
    sweep(session, now, config)
    counts = sweep(session, now + timedelta(hours=19), config)
    [flag] = _flags(session, "unanswered_text")
    assert flag.severity == "high"
    assert _events(session, flag)[:2] == ["opened", "severity_raised"]
    assert counts.flags_raised == 1 and counts.pages == 1


def test_an_answered_text_raises_nothing_and_the_reply_resolves_the_flag(
    session: Session, now: datetime, config: Config
) -> None:
    from bot.services.inbox import end_wait

    coach = make_user(session, now)
    answered = make_participant(session, now)
    waiting = make_participant(session, now)
    _waiting_text(session, answered, now - timedelta(hours=30))
    _waiting_text(session, waiting, now - timedelta(hours=30))
    end_wait(
        session,
        kind="reply",
        user_id=coach.id,
        now=now - timedelta(hours=29),
        participant_id=answered.id,
    )
    session.commit()
    sweep(session, now, config)
    [flag] = _flags(session, "unanswered_text")
    assert flag.participant_id == waiting.id
    end_wait(session, kind="no_reply_needed", user_id=coach.id, now=now, participant_id=waiting.id)
    session.commit()
    [flag] = _flags(session, "unanswered_text")
    assert (flag.state, flag.outcome, flag.resolved_by_id) == (
        "resolved",
        "no_action_needed",
        coach.id,
    )
    sweep(session, now + timedelta(hours=1), config)
    assert [f.state for f in _flags(session, "unanswered_text")] == ["resolved"]
