"""Unknown numbers are not a dead end (issue 15.7), without Flask: a coordinator reads the
number's conversation, replies through the outbox, and enrols it or links it to a participant
whose number changed; its texts become that person's and its flag resolves."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import AuditLog, Flag, InboundMessage, OutboundMessage, PhoneChange
from bot.services import inbox
from bot.services import participants_editing as editing
from bot.services import unknown_numbers as unknown
from bot.services.coach_reply import SensitiveWords
from bot.services.conversation import ChangeError
from bot.services.inbound import receive
from scheduler.plan import plan
from tests.factories import make_participant, make_user
from tests.services.test_inbound import form

STRANGER = "+13125550177"


def _text(sessions: sessionmaker[Session], config: Config, body: str, at: datetime) -> int:
    outcome = receive(sessions, form(STRANGER, body), now=at, config=config)
    assert outcome.message_id is not None and not outcome.failed
    return outcome.message_id


def test_the_conversation_of_an_unknown_number_has_its_texts_and_the_automatic_answer(
    sessions: sessionmaker[Session], session: Session, config: Config, now: datetime
) -> None:
    first = _text(sessions, config, "hi this is Dana, new phone", now)
    _text(sessions, config, "are you there?", now + timedelta(minutes=5))
    number, owner = unknown.from_message(session, first)
    assert owner is None and number is not None
    assert (number.phone, number.channel, number.masked) == (STRANGER, "sms", "+1******0177")
    thread = unknown.thread(session, number)
    assert [e.direction for e in thread] == ["in", "out", "in"]  # one polite answer a day
    assert unknown.waiting_since(session, number) == now
    assert unknown.open_flag(session, number) is not None


def test_a_reply_goes_through_the_outbox_at_once_and_ends_the_wait(
    sessions: sessionmaker[Session], session: Session, config: Config, now: datetime
) -> None:
    first = _text(sessions, config, "who is this?", now)
    coordinator = make_user(session, now, role="coordinator")
    number, _ = unknown.from_message(session, first)
    assert number is not None
    late = now + timedelta(hours=12)  # 10 pm in New York: a person answers at any hour
    message = unknown.send_reply(
        session,
        number,
        body="Hi, this is Homecoming Peers. Who is this?",
        staff_user_id=coordinator.id,
        now=late,
        reply_key="k1",
    )
    again = unknown.send_reply(
        session,
        number,
        body="Hi, this is Homecoming Peers. Who is this?",
        staff_user_id=coordinator.id,
        now=late,
        reply_key="k1",
    )
    session.commit()
    assert again.id == message.id  # a double click queues one text
    # A staff reply, so it takes the urgent lane like a reply to a participant.
    assert (message.participant_id, message.purpose, message.status) == (
        None,
        "coach_reply",
        "pending",
    )
    assert (message.send_after, message.ignore_quiet_hours, message.created_by_id) == (
        late,
        True,
        coordinator.id,
    )
    assert unknown.waiting_since(session, number) is None
    assert inbox.waiting_count(session, coordinator) == 0
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "unknown.reply")).one()
    assert audit.detail is not None and audit.detail["sender"] == "+1******0177"


def test_a_reply_naming_a_sensitive_word_or_to_a_number_that_said_stop_is_refused(
    sessions: sessionmaker[Session], session: Session, config: Config, now: datetime
) -> None:
    first = _text(sessions, config, "hello?", now)
    number, _ = unknown.from_message(session, first)
    assert number is not None
    with pytest.raises(SensitiveWords):
        unknown.send_reply(
            session, number, body="About your probation officer", staff_user_id=1, now=now
        )
    session.rollback()
    _text(sessions, config, "STOP", now + timedelta(minutes=1))
    with pytest.raises(ChangeError, match="texted STOP"):
        unknown.send_reply(session, number, body="Hello", staff_user_id=1, now=now)
    assert (
        session.scalars(select(OutboundMessage).where(OutboundMessage.created_by_id == 1)).all()
        == []
    )


def test_enrolling_the_number_makes_its_texts_the_new_participants_and_resolves_its_flag(
    sessions: sessionmaker[Session], session: Session, config: Config, now: datetime
) -> None:
    first = _text(sessions, config, "hi this is Dana, my coach gave me this number", now)
    number, _ = unknown.from_message(session, first)
    assert number is not None and number.phone is not None
    values = editing.check_form(
        session,
        {"first_name": "Dana", "phone": number.phone, "release_date": "2026-03-01"},
        default_timezone=config.program_timezone,
    )
    person = editing.create_participant(session, values, now=now, user_id=None, planner=plan)
    adopted = unknown.adopt(session, number, person, now=now, user_id=None, how="enrolled")
    session.commit()
    assert (adopted.texts, adopted.replies, adopted.flag_resolved) == (1, 1, True)
    assert unknown.from_message(session, first) == (None, person.id)
    flag = session.scalars(select(Flag).where(Flag.reason == "unknown_sender")).one()
    assert flag.state == "resolved" and "Enrolled as Dana" in (flag.note or "")
    # The text still waits for a person, now in the participant's conversation.
    assert inbox.is_waiting(session, person.id) == now


def test_linking_a_changed_number_keeps_the_old_one_and_moves_the_texts(
    sessions: sessionmaker[Session], session: Session, config: Config, now: datetime
) -> None:
    person = make_participant(session, now, phone="+13125550100")
    session.commit()
    first = _text(sessions, config, "it's Sam, I got a new phone", now)
    number, _ = unknown.from_message(session, first)
    assert number is not None
    adopted = unknown.link_to_participant(
        session, number, person, now=now, user_id=None, planner=plan
    )
    session.commit()
    assert adopted.texts == 1 and adopted.flag_resolved
    assert person.phone == STRANGER
    change = session.scalars(select(PhoneChange)).one()
    assert (change.old_phone, change.new_phone, change.kind) == (
        "+13125550100",
        STRANGER,
        "linked_unknown_number",
    )
    moved = session.get_one(InboundMessage, first)
    assert moved.participant_id == person.id
    assert "unknown.linked" in session.scalars(select(AuditLog.action)).all()
    # Texts from the number now reach them as a participant's.
    session.rollback()
    later = receive(sessions, form(STRANGER, "thanks"), now=now + timedelta(hours=1), config=config)
    assert session.get_one(InboundMessage, later.message_id).participant_id == person.id


def test_a_number_that_belongs_to_someone_else_cannot_be_linked(
    sessions: sessionmaker[Session], session: Session, config: Config, now: datetime
) -> None:
    first = _text(sessions, config, "hello", now)
    number, _ = unknown.from_message(session, first)
    assert number is not None
    make_participant(session, now, phone=STRANGER, external_id="P-09999")
    other = make_participant(session, now)
    with pytest.raises(ChangeError, match="P-09999"):
        unknown.link_to_participant(session, number, other, now=now, user_id=None)
