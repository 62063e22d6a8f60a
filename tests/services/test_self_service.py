"""Self-service keywords end to end: a text through `receive`, then the scheduler's ticks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import AuditLog, InboundMessage, Participant, PlannedContact
from bot.services import self_service
from bot.services.inbound import InboundForm, receive
from bot.services.templates import render_message
from bot.transport.simulated import SimulatedTransport
from messages.keywords import Intent
from scheduler.tick import tick
from tests.factories import make_appointment, make_participant, make_user
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WELCOME_SENT = utc("2026-03-02T15:05:00Z")  # 10:05 EST on the release date
PAUSED_AT = utc("2026-03-03T14:00:00Z")  # 09:00 EST on day 1
_n = iter(range(1, 10**6))


def _person(sessions: sessionmaker[Session], **overrides: object) -> int:
    with sessions.begin() as session:
        coach = make_user(session, ENROLLED, name="Dana Coach")
        values: dict[str, object] = {
            "release_date": date(2026, 3, 2),
            "enrolled_at": ENROLLED,
            "coach_id": coach.id,
        }
        values.update(overrides)
        return make_participant(session, ENROLLED, **values).id


def _text(
    sessions: sessionmaker[Session], config: Config, pid: int, body: str, now: datetime
) -> str | None:
    with sessions() as session:
        phone = session.get_one(Participant, pid).phone
    form = InboundForm(
        message_sid=f"SM{next(_n):032d}",
        from_address=phone,
        to_address="+15550100999",
        body=body,
        num_media=0,
    )
    outcome = receive(sessions, form, now=now, config=config)
    assert not outcome.failed
    return outcome.reply


def _tick(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> list[str]:
    """The purposes of what this tick sent."""
    before = len(transport.sent)
    tick(sessions, transport, config, now, rate_limited=False)
    sent = transport.sent[before:]
    return [m.idempotency_key for m in sent]


def _kinds_sent(sessions: sessionmaker[Session], keys: list[str]) -> list[str]:
    ids = [int(k.removeprefix("contact:")) for k in keys if k.startswith("contact:")]
    with sessions() as session:
        return sorted(
            f"{c.kind}:{c.occurrence if c.kind != 'reminder' else c.rule}"
            for c in session.scalars(select(PlannedContact).where(PlannedContact.id.in_(ids)))
        )


def _contact(sessions: sessionmaker[Session], pid: int, occurrence: str) -> PlannedContact:
    with sessions() as session:
        return session.scalars(
            select(PlannedContact).where(
                PlannedContact.participant_id == pid, PlannedContact.occurrence == occurrence
            )
        ).one()


def _actions(sessions: sessionmaker[Session], pid: int) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                select(AuditLog.action).where(AuditLog.participant_id == pid).order_by(AuditLog.id)
            )
        )


def test_pause_holds_check_ins_for_a_week_while_a_reminder_still_goes(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person(sessions)
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        # Its 3-day reminder is due at 10:00 EST on day 1, with the day-1 check-in.
        make_appointment(session, person, utc("2026-03-06T18:00:00Z"), ENROLLED)
    assert _kinds_sent(sessions, _tick(sessions, transport, config, WELCOME_SENT)) == [
        "welcome:welcome"
    ]

    reply = _text(sessions, config, pid, "PAUSE", PAUSED_AT)

    assert reply is not None and "start again on Tuesday, March 10" in reply
    with sessions() as session:
        until = session.get_one(Participant, pid).checkins_paused_until
    assert until == PAUSED_AT + timedelta(days=7)
    day1 = utc("2026-03-03T15:05:00Z")
    assert _kinds_sent(sessions, _tick(sessions, transport, config, day1)) == [
        "reminder:reminder.3d"
    ]
    later: list[str] = []
    for day in ("2026-03-04", "2026-03-05", "2026-03-07", "2026-03-09"):  # days 2, 3, 5, 7
        later += _tick(sessions, transport, config, utc(f"{day}T15:05:00Z"))
    assert _kinds_sent(sessions, later) == ["reminder:reminder.1d"]
    for occurrence in ("day-1", "day-2", "day-3", "day-5", "day-7"):
        contact = _contact(sessions, pid, occurrence)
        assert (contact.state, contact.state_reason) == ("skipped", "checkins_paused")
    # A week later check-ins go again, with no RESUME.
    day10 = utc("2026-03-12T14:05:00Z")  # 10:05 EDT
    assert _kinds_sent(sessions, _tick(sessions, transport, config, day10)) == ["checkin:day-10"]
    assert _actions(sessions, pid) == ["participant.checkins_paused"]


def test_resume_lets_the_next_check_in_go(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person(sessions)
    _tick(sessions, transport, config, WELCOME_SENT)
    _text(sessions, config, pid, "pause", PAUSED_AT)
    assert _tick(sessions, transport, config, utc("2026-03-03T15:05:00Z")) == []

    reply = _text(sessions, config, pid, "RESUME", utc("2026-03-04T14:00:00Z"))

    assert reply == "Welcome back, Sam! Check-ins are on again. - Dana"
    with sessions() as session:
        assert session.get_one(Participant, pid).checkins_paused_until is None
    sent = _tick(sessions, transport, config, utc("2026-03-04T15:05:00Z"))
    assert _kinds_sent(sessions, sent) == ["checkin:day-2"]
    assert _actions(sessions, pid) == [
        "participant.checkins_paused",
        "participant.checkins_resumed",
    ]


def test_a_welcome_held_by_a_pause_goes_when_the_person_resumes(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    # Enrolled days before release: the welcome (7-day window) is due on the release date.
    pid = _person(sessions, release_date=date(2026, 3, 5))
    _tick(sessions, transport, config, ENROLLED)
    _text(sessions, config, pid, "PAUSA", ENROLLED + timedelta(hours=1))
    release = utc("2026-03-05T15:05:00Z")
    assert _tick(sessions, transport, config, release) == []
    welcome = _contact(sessions, pid, "welcome")
    assert (welcome.state, welcome.send_after) == ("planned", ENROLLED + timedelta(days=7, hours=1))

    _text(sessions, config, pid, "SEGUIR", release + timedelta(hours=1))

    sent = _tick(sessions, transport, config, release + timedelta(hours=1, minutes=1))
    assert _kinds_sent(sessions, sent) == ["welcome:welcome"]


@pytest.mark.parametrize(
    ("language", "body", "expected"),
    [
        ("en", "PAUSE", "Got it, Sam. Check-ins are paused for a week and start again on "),
        (
            "es",
            "PAUSA",
            "Listo, Sam. Pausamos el seguimiento una semana; vuelve el lunes 9 de marzo.",
        ),
    ],
)
def test_the_pause_reply_names_the_local_date_in_the_persons_language(
    sessions: sessionmaker[Session], config: Config, language: str, body: str, expected: str
) -> None:
    # 22:30 EST on March 2 is already March 3 in UTC; a week later it is 23:30 EDT on March 9
    # (DST began on March 8), March 10 in UTC: the date named is the person's own.
    pid = _person(sessions, language=language)
    reply = _text(sessions, config, pid, body, utc("2026-03-03T03:30:00Z"))
    assert reply is not None and reply.startswith(expected)
    if language == "en":
        assert "Monday, March 9" in reply


def test_next_gives_the_nearest_appointment_in_the_persons_zone_and_language(
    sessions: sessionmaker[Session], config: Config
) -> None:
    pid = _person(sessions, language="es", timezone="America/Chicago")
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        make_appointment(
            session, person, utc("2026-03-20T18:00:00Z"), ENROLLED, location="Far Away"
        )
        make_appointment(
            session, person, utc("2026-03-06T18:30:00Z"), ENROLLED, location="120 Main St"
        )
        make_appointment(session, person, utc("2026-03-05T18:00:00Z"), ENROLLED, status="cancelled")
    reply = _text(sessions, config, pid, "¿Cuál es mi próxima cita?", PAUSED_AT)
    assert reply == "Sam, tu siguiente cita es el viernes 6 de marzo a las 12:30 en 120 Main St."


def test_next_without_an_appointment_says_there_is_none(
    sessions: sessionmaker[Session], config: Config
) -> None:
    pid = _person(sessions)
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        make_appointment(session, person, PAUSED_AT - timedelta(days=1), ENROLLED)  # past
    reply = _text(sessions, config, pid, "NEXT", PAUSED_AT)
    assert reply is not None and reply.startswith("Sam, I don't have an upcoming appointment")


def test_next_uses_the_template_for_the_appointments_kind(
    sessions: sessionmaker[Session], config: Config
) -> None:
    pid = _person(sessions)
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        make_appointment(session, person, utc("2026-03-06T18:30:00Z"), ENROLLED, kind="housing")
        from bot.models import Template

        session.add(
            Template(
                key="next_appointment.housing",
                language="en",
                body="Housing visit: {{ appointment_date }}, {{ appointment_time }}.",
                version=1,
                updated_at=ENROLLED,
            )
        )
    reply = _text(sessions, config, pid, "next appt", PAUSED_AT)
    assert reply == "Housing visit: Friday, March 6, 1:30 PM."


@pytest.mark.parametrize(
    ("language", "body", "expected"),
    [
        ("en", "can you call me?", "Thanks, Sam. Dana will call you."),
        ("es", "LLÁMAME", "Gracias, Sam. Dana te va a llamar."),
    ],
)
def test_call_me_is_a_callback_request_answered_in_the_persons_language(
    sessions: sessionmaker[Session], config: Config, language: str, body: str, expected: str
) -> None:
    pid = _person(sessions, language=language)
    assert _text(sessions, config, pid, body, PAUSED_AT) == expected
    assert _actions(sessions, pid) == ["participant.callback_requested"]
    with sessions() as session:
        assert session.scalars(select(InboundMessage.intent)).one() == "call_me"


def test_call_me_needs_a_person_even_from_someone_who_opted_out(
    sessions: sessionmaker[Session], session: Session, config: Config
) -> None:
    pid = _person(sessions, status="opted_out")
    person = session.get_one(Participant, pid)
    message = InboundMessage(
        message_sid="SM" + "1" * 32,
        from_address=person.phone,
        to_address="+15550100999",
        channel="sms",
        body="call me",
        num_media=0,
        raw_form={},
        participant_id=pid,
        received_at=PAUSED_AT,
        processing_state="received",
    )
    session.add(message)
    session.flush()
    answer = self_service.answer(
        session,
        message,
        person,
        Intent.CALL_ME,
        now=PAUSED_AT,
        config=config,
        render=render_message,
    )
    assert answer == self_service.Answer(None, needs_reply=True)
    for intent in (Intent.NEXT, Intent.PAUSE):
        answer = self_service.answer(
            session, message, person, intent, now=PAUSED_AT, config=config, render=render_message
        )
        assert answer == self_service.Answer(None)
    assert person.checkins_paused_until is None


def test_resume_from_someone_who_opted_out_opts_them_back_in(
    sessions: sessionmaker[Session], config: Config
) -> None:
    pid = _person(sessions, status="opted_out")
    reply = _text(sessions, config, pid, "resume", PAUSED_AT)
    assert reply is not None and reply.startswith("Welcome back!")
    with sessions() as session:
        assert session.get_one(Participant, pid).status == "active"
