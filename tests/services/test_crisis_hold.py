"""An open crisis flag holds a person's automated check-ins and welcome; reminders still go;
the held texts go on the first pass after the flag is resolved, while their windows are open."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Flag, Participant, PlannedContact
from bot.services.flags import resolve_flag
from bot.services.inbound import InboundForm, receive
from bot.transport.simulated import SimulatedTransport
from scheduler.tick import tick
from tests.factories import make_appointment, make_participant, make_user
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WELCOME_SENT = utc("2026-03-02T15:05:00Z")  # 10:05 EST on the release date
CRISIS_AT = utc("2026-03-03T14:00:00Z")  # 09:00 EST on day 1
DAY1_CHECKIN_TICK = utc("2026-03-03T15:05:00Z")  # 10:05 EST: the day-1 slot is due


def _person_with_reminder(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        coach = make_user(session, ENROLLED, name="Dana Coach", phone="+15550100123")
        person = make_participant(
            session,
            ENROLLED,
            release_date=date(2026, 3, 2),
            enrolled_at=ENROLLED,
            coach_id=coach.id,
        )
        # Its 3-day reminder is due at 10:00 EST on day 1, with the day-1 check-in.
        make_appointment(session, person, utc("2026-03-06T18:00:00Z"), ENROLLED)
        return person.id


def _crisis_text(sessions: sessionmaker[Session], config: Config, pid: int) -> None:
    with sessions() as session:
        phone = session.get_one(Participant, pid).phone
    form = InboundForm(
        message_sid="SM" + "7" * 32,
        from_address=phone,
        to_address="+15550100999",
        body="i cant do this anymore i want to kill myself",
        num_media=0,
    )
    assert not receive(sessions, form, now=CRISIS_AT, config=config).failed


def _sent_kinds(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> list[str]:
    before = len(transport.sent)
    tick(sessions, transport, config, now, rate_limited=False)
    ids = [
        int(m.idempotency_key.removeprefix("contact:"))
        for m in transport.sent[before:]
        if m.idempotency_key.startswith("contact:")
    ]
    with sessions() as session:
        return sorted(
            c.kind
            for c in session.scalars(select(PlannedContact).where(PlannedContact.id.in_(ids)))
        )


def _day1(sessions: sessionmaker[Session], pid: int) -> PlannedContact:
    with sessions() as session:
        return session.scalars(
            select(PlannedContact).where(
                PlannedContact.participant_id == pid, PlannedContact.occurrence == "day-1"
            )
        ).one()


def _resolve_crisis(sessions: sessionmaker[Session], pid: int, now: datetime) -> None:
    with sessions.begin() as session:
        flag = session.scalars(
            select(Flag).where(Flag.participant_id == pid, Flag.reason == "crisis")
        ).one()
        resolve_flag(session, flag, outcome="reached", note=None, now=now, user_id=None)


def test_an_open_crisis_flag_holds_the_check_in_but_not_the_reminder(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person_with_reminder(sessions)
    assert _sent_kinds(sessions, transport, config, WELCOME_SENT) == ["welcome"]
    _crisis_text(sessions, config, pid)

    assert _sent_kinds(sessions, transport, config, DAY1_CHECKIN_TICK) == ["reminder"]
    day1 = _day1(sessions, pid)
    assert day1.state == "planned"
    assert day1.send_after > DAY1_CHECKIN_TICK  # held, looked at again later


def test_the_held_check_in_goes_once_the_crisis_flag_is_resolved_inside_its_window(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person_with_reminder(sessions)
    _sent_kinds(sessions, transport, config, WELCOME_SENT)
    _crisis_text(sessions, config, pid)
    _sent_kinds(sessions, transport, config, DAY1_CHECKIN_TICK)

    _resolve_crisis(sessions, pid, utc("2026-03-03T17:00:00Z"))  # 12:00 EST

    assert _sent_kinds(sessions, transport, config, utc("2026-03-03T17:06:00Z")) == ["checkin"]
    assert _day1(sessions, pid).state == "sent"


def test_a_check_in_whose_window_closes_during_the_crisis_is_skipped_not_sent_late(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person_with_reminder(sessions)
    _sent_kinds(sessions, transport, config, WELCOME_SENT)
    _crisis_text(sessions, config, pid)
    _sent_kinds(sessions, transport, config, DAY1_CHECKIN_TICK)
    # Passes through the day while the flag stays open; the window ends at 20:00 EST.
    for hour in ("18", "22", "00"):
        day = "2026-03-03" if hour != "00" else "2026-03-04"
        _sent_kinds(sessions, transport, config, utc(f"{day}T{hour}:55:00Z"))

    day1 = _day1(sessions, pid)
    assert (day1.state, day1.state_reason) == ("skipped", "crisis_open")
    _resolve_crisis(sessions, pid, utc("2026-03-04T02:00:00Z"))
    assert "checkin" not in _sent_kinds(sessions, transport, config, utc("2026-03-04T02:10:00Z"))
