"""Numbers that change hands: a "wrong number" reply or two carrier failures in a row raise
`number_changed`, which holds every automated text until a coordinator confirms or changes the
number; a delivered text resolves `delivery_failed`."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import AuditLog, Flag, OutboundMessage, Participant, PhoneChange, PlannedContact
from bot.services import numbers
from bot.services.delivery import apply_status
from bot.services.flags import raise_flag
from bot.services.inbound import InboundForm, receive
from bot.services.outbox import enqueue
from bot.transport.simulated import SimulatedTransport
from scheduler.tick import tick
from tests.factories import make_participant, make_sent_message, make_user
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = utc("2026-03-03T15:05:00Z")  # 10:05 EST on day 1
_n = itertools.count(1)


def _form(sender: str, body: str) -> InboundForm:
    return InboundForm(
        message_sid=f"SM{next(_n):032d}",
        from_address=sender,
        to_address="+15550100999",
        body=body,
        num_media=0,
        raw_form={"Body": [body], "From": [sender]},
    )


def _person(sessions: sessionmaker[Session]) -> Participant:
    with sessions.begin() as session:
        person = make_participant(
            session, ENROLLED, release_date=date(2026, 3, 2), enrolled_at=ENROLLED
        )
        session.expunge(person)
        return person


def _flag(sessions: sessionmaker[Session], pid: int, reason: str = "number_changed") -> Flag | None:
    with sessions() as session:
        return session.scalars(
            select(Flag).where(Flag.participant_id == pid, Flag.reason == reason)
        ).first()


def _run(sessions: sessionmaker[Session], transport: object, config: Config, now: datetime) -> None:
    tick(sessions, transport, config, now, rate_limited=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", ["wrong number", "new phone who dis", "¿Quién es?"])
def test_a_wrong_number_reply_raises_number_changed_and_waits_for_a_person(
    sessions: sessionmaker[Session], config: Config, body: str
) -> None:
    person = _person(sessions)
    outcome = receive(sessions, _form(person.phone, body), now=NOW, config=config)
    assert outcome.reply is None and outcome.intent == "wrong_number"
    flag = _flag(sessions, person.id)
    assert flag is not None and flag.severity == "high" and flag.state == "open"


def test_while_the_number_is_in_doubt_nothing_automated_goes_but_a_staff_reply_does(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    person = _person(sessions)
    _run(sessions, transport, config, ENROLLED)  # plans
    receive(
        sessions, _form(person.phone, "wrong number"), now=NOW - timedelta(minutes=5), config=config
    )
    with sessions.begin() as session:
        coach = make_user(session, ENROLLED)
        enqueue(
            session,
            idempotency_key="coach_reply:test",
            purpose="coach_reply",
            channel="sms",
            to_address=person.phone,
            body="Hi, this is your coach. Is this still Sam?",
            now=NOW,
            participant_id=person.id,
            created_by_id=coach.id,
            ignore_quiet_hours=True,
        )
    _run(sessions, transport, config, NOW)
    assert [m.body for m in transport.sent] == ["Hi, this is your coach. Is this still Sam?"]
    with sessions() as session:
        held = session.scalars(
            select(PlannedContact).where(
                PlannedContact.participant_id == person.id,
                PlannedContact.send_after <= NOW + timedelta(minutes=5),
                PlannedContact.state == "planned",
            )
        ).all()
    assert {c.occurrence for c in held} >= {"welcome", "day-1"}
    # A coordinator confirms the number: the held check-in goes on the next pass.
    with sessions.begin() as session:
        numbers.confirm_number(
            session, session.get_one(Participant, person.id), user_id=coach.id, now=NOW
        )
    _run(sessions, transport, config, NOW + timedelta(minutes=6))
    assert len(transport.sent) == 3
    flag = _flag(sessions, person.id)
    assert flag is not None and flag.state == "resolved"


def _failed(
    sessions: sessionmaker[Session], person: Participant, code: int, at: datetime
) -> OutboundMessage:
    with sessions.begin() as session:
        message = make_sent_message(
            session,
            session.get_one(Participant, person.id),
            at,
            provider_sid=f"SM{next(_n):032d}",
        )
        sid = message.provider_sid
        assert sid is not None
        apply_status(
            session, provider_sid=sid, twilio_status="undelivered", error_code=str(code), now=at
        )
        return message


def _delivered(sessions: sessionmaker[Session], person: Participant, at: datetime) -> None:
    with sessions.begin() as session:
        message = make_sent_message(
            session,
            session.get_one(Participant, person.id),
            at,
            provider_sid=f"SM{next(_n):032d}",
        )
        assert message.provider_sid is not None
        apply_status(
            session,
            provider_sid=message.provider_sid,
            twilio_status="delivered",
            error_code=None,
            now=at,
        )


def test_two_carrier_failures_in_a_row_after_deliveries_raise_number_changed(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    _delivered(sessions, person, NOW - timedelta(days=3))
    _failed(sessions, person, 30003, NOW - timedelta(days=2))
    assert _flag(sessions, person.id) is None  # one failure is not enough
    _failed(sessions, person, 30006, NOW - timedelta(days=1))
    flag = _flag(sessions, person.id)
    assert flag is not None and flag.severity == "high"


def test_failures_without_an_earlier_delivery_are_not_a_changed_number(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    _failed(sessions, person, 30003, NOW - timedelta(days=2))
    _failed(sessions, person, 30005, NOW - timedelta(days=1))
    assert _flag(sessions, person.id) is None
    assert _flag(sessions, person.id, "delivery_failed") is not None


def test_a_failure_with_another_code_breaks_the_run(sessions: sessionmaker[Session]) -> None:
    person = _person(sessions)
    _delivered(sessions, person, NOW - timedelta(days=4))
    _failed(sessions, person, 30003, NOW - timedelta(days=3))
    _failed(sessions, person, 30007, NOW - timedelta(days=2))  # carrier filtering, not a change
    assert _flag(sessions, person.id) is None


def test_a_later_delivered_text_resolves_delivery_failed(sessions: sessionmaker[Session]) -> None:
    person = _person(sessions)
    _failed(sessions, person, 30003, NOW - timedelta(days=2))
    flag = _flag(sessions, person.id, "delivery_failed")
    assert flag is not None and flag.state == "open"
    _delivered(sessions, person, NOW - timedelta(days=1))
    flag = _flag(sessions, person.id, "delivery_failed")
    assert flag is not None and flag.state == "resolved"


def test_changing_the_number_keeps_the_old_one_audits_and_resolves(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now, phone="+13125550101")
    coordinator = make_user(session, now, role="coordinator")
    raise_flag(session, reason="number_changed", now=now, participant_id=person.id)
    enqueue(
        session,
        idempotency_key="queued:1",
        purpose="checkin",
        channel="sms",
        to_address=person.phone,
        body="Hi",
        now=now,
        participant_id=person.id,
    )
    numbers.change_number(session, person, "(312) 555-0199", user_id=coordinator.id, now=now)
    assert person.phone == "+13125550199"
    change = session.scalars(select(PhoneChange)).one()
    assert (change.old_phone, change.new_phone, change.kind) == (
        "+13125550101",
        "+13125550199",
        "edited",
    )
    audit = session.scalars(
        select(AuditLog).where(AuditLog.action == "participant.number_changed")
    ).one()
    assert "+13125550101" not in str(audit.detail)  # masked
    assert numbers.open_flag(session, person.id) is None
    assert session.scalars(select(OutboundMessage.to_address)).one() == "+13125550199"


def test_a_number_that_belongs_to_another_participant_is_refused(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    other = make_participant(session, now)
    coordinator = make_user(session, now, role="coordinator")
    with pytest.raises(numbers.NumberError):
        numbers.change_number(session, person, other.phone, user_id=coordinator.id, now=now)
    with pytest.raises(numbers.NumberError):
        numbers.change_number(session, person, "555-01", user_id=coordinator.id, now=now)
