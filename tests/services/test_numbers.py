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


# Status callbacks arrive out of order: "in a row" and "later" mean in the order the texts
# were sent, whatever order Twilio's callbacks come in.


def _sent(
    sessions: sessionmaker[Session], person: Participant, at: datetime, **overrides: object
) -> str:
    """A text handed to Twilio at `at`, its outcome not yet known; returns its SID."""
    with sessions.begin() as session:
        message = make_sent_message(
            session,
            session.get_one(Participant, person.id),
            at,
            provider_sid=f"SM{next(_n):032d}",
            **overrides,
        )
        assert message.provider_sid is not None
        return message.provider_sid


def _callback(
    sessions: sessionmaker[Session], sid: str, status: str, code: int | None = None
) -> None:
    with sessions.begin() as session:
        apply_status(
            session,
            provider_sid=sid,
            twilio_status=status,
            error_code=None if code is None else str(code),
            now=NOW,
        )


def test_two_failures_reported_newest_first_are_still_two_in_a_row(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    first = _sent(sessions, person, NOW - timedelta(days=3))
    second = _sent(sessions, person, NOW - timedelta(days=2))
    third = _sent(sessions, person, NOW - timedelta(days=1))
    _callback(sessions, first, "delivered")
    _callback(sessions, third, "undelivered", 30005)
    assert _flag(sessions, person.id) is None
    _callback(sessions, second, "undelivered", 30003)
    flag = _flag(sessions, person.id)
    assert flag is not None and flag.state == "open"


def test_a_later_delivery_reported_before_an_earlier_failure_is_no_changed_number(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    sids = [_sent(sessions, person, NOW - timedelta(days=4 - i)) for i in range(4)]
    _callback(sessions, sids[0], "delivered")
    _callback(sessions, sids[1], "undelivered", 30003)
    _callback(sessions, sids[3], "delivered")  # the newest got through first
    _callback(sessions, sids[2], "undelivered", 30003)  # then the older failure
    assert _flag(sessions, person.id) is None


def test_a_late_failure_of_an_older_text_after_a_newer_delivery_is_not_in_a_row(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    sids = [_sent(sessions, person, NOW - timedelta(days=4 - i)) for i in range(4)]
    _callback(sessions, sids[0], "delivered")
    _callback(sessions, sids[2], "delivered")
    _callback(sessions, sids[3], "undelivered", 30003)
    _callback(sessions, sids[1], "undelivered", 30006)  # late: sent before the delivered one
    assert _flag(sessions, person.id) is None


def test_two_failures_with_a_text_between_them_still_unanswered_are_not_in_a_row(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    sids = [_sent(sessions, person, NOW - timedelta(days=4 - i)) for i in range(4)]
    _callback(sessions, sids[0], "delivered")
    _callback(sessions, sids[1], "undelivered", 30003)
    _callback(sessions, sids[3], "undelivered", 30003)  # the text between: no outcome yet
    assert _flag(sessions, person.id) is None
    _callback(sessions, sids[2], "delivered")
    assert _flag(sessions, person.id) is None


def test_the_text_between_failing_late_completes_the_run(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    sids = [_sent(sessions, person, NOW - timedelta(days=4 - i)) for i in range(4)]
    _callback(sessions, sids[0], "delivered")
    _callback(sessions, sids[1], "undelivered", 30003)
    _callback(sessions, sids[3], "undelivered", 30003)
    assert _flag(sessions, person.id) is None
    _callback(sessions, sids[2], "failed", 30005)
    assert _flag(sessions, person.id) is not None


def test_in_a_row_follows_the_order_sent_not_the_order_the_rows_were_made(
    sessions: sessionmaker[Session],
) -> None:
    """Rows are made in one order (a check-in held for the morning keeps its early id) and sent
    in another: a later row sent earlier counts as earlier."""
    person = _person(sessions)
    delivered = _sent(sessions, person, NOW - timedelta(days=5))
    made_first_sent_third = _sent(sessions, person, NOW - timedelta(days=2))
    made_second_sent_second = _sent(sessions, person, NOW - timedelta(days=3))
    made_third_sent_fourth = _sent(sessions, person, NOW - timedelta(days=1))
    _callback(sessions, delivered, "delivered")
    _callback(sessions, made_second_sent_second, "undelivered", 30003)
    _callback(sessions, made_first_sent_third, "delivered")
    _callback(sessions, made_third_sent_fourth, "undelivered", 30003)
    # By row id the last two are failures; by the order sent a delivery lies between them.
    assert _flag(sessions, person.id) is None


def test_the_moment_handed_to_twilio_orders_texts_sent_in_the_same_pass(
    sessions: sessionmaker[Session],
) -> None:
    """A tick records every text it sends with the tick's own time; the moment each was handed
    to Twilio tells which of two texts to one person went first."""
    person = _person(sessions)
    tick_at = NOW - timedelta(days=1)
    delivered = _sent(sessions, person, NOW - timedelta(days=3))
    second = _sent(sessions, person, tick_at, handed_at=tick_at + timedelta(seconds=40))
    first = _sent(sessions, person, tick_at, handed_at=tick_at + timedelta(seconds=10))
    _callback(sessions, delivered, "delivered")
    _callback(sessions, first, "undelivered", 30003)
    _callback(sessions, second, "delivered")
    later = _sent(sessions, person, NOW - timedelta(hours=1))
    _callback(sessions, later, "undelivered", 30003)
    assert _flag(sessions, person.id) is None  # failed, delivered, failed: not in a row


def test_an_older_texts_late_delivery_does_not_resolve_a_newer_failure(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    older = _sent(sessions, person, NOW - timedelta(days=2))
    newer = _sent(sessions, person, NOW - timedelta(days=1))
    _callback(sessions, newer, "undelivered", 30003)
    _callback(sessions, older, "delivered")  # sent before the failure: says nothing after it
    flag = _flag(sessions, person.id, "delivery_failed")
    assert flag is not None and flag.state == "open"


def test_a_newer_texts_delivery_resolves_a_failure_reported_after_it(
    sessions: sessionmaker[Session],
) -> None:
    person = _person(sessions)
    _failed(sessions, person, 30003, NOW - timedelta(days=3))  # the flag is open
    older = _sent(sessions, person, NOW - timedelta(days=2))
    newer = _sent(sessions, person, NOW - timedelta(days=1))
    _callback(sessions, newer, "delivered")
    flag = _flag(sessions, person.id, "delivery_failed")
    assert flag is not None and flag.state == "resolved"
    # The older text's failure comes in after: a later text already got through.
    _callback(sessions, older, "undelivered", 30003)
    with sessions() as session:
        open_flags = session.scalars(
            select(Flag).where(
                Flag.participant_id == person.id,
                Flag.reason == "delivery_failed",
                Flag.state != "resolved",
            )
        ).all()
    assert open_flags == []


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
