"""The inbox (DESIGN.md §2 "Inbox"): which texts wait for a person, and how the wait ends."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Expectation, Flag, InboundMessage, Participant
from bot.services import inbox
from bot.services.flags import raise_flag
from bot.services.inbound import receive
from tests.factories import (
    make_appointment,
    make_participant,
    make_sent_message,
    make_sent_reminder,
    make_user,
)
from tests.services.test_inbound import form


def _text(
    sessions: sessionmaker[Session], config: Config, sender: str, body: str, at: datetime
) -> InboundMessage:
    outcome = receive(sessions, form(sender, body), now=at, config=config)
    assert outcome.message_id is not None and not outcome.failed
    with sessions() as session:
        return session.get_one(InboundMessage, outcome.message_id)


def _person(sessions: sessionmaker[Session], now: datetime, **overrides: object) -> Participant:
    with sessions() as session:
        person = make_participant(session, now, **overrides)
        session.commit()
        session.refresh(person)
        session.expunge(person)
        return person


def test_a_free_text_waits_for_a_reply(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    person = _person(sessions, now)
    text = _text(sessions, config, person.phone, "Can you call me tomorrow?", now)
    assert text.needs_reply and text.answered_at is None


def test_help_and_crisis_texts_wait_even_though_they_were_answered(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    person = _person(sessions, now)
    help_text = _text(sessions, config, person.phone, "AYUDA", now)
    crisis = _text(sessions, config, person.phone, "i want to end my life", now)
    assert help_text.intent == "help" and help_text.needs_reply
    assert crisis.intent == "crisis" and crisis.needs_reply


def test_carrier_keywords_and_start_are_fully_answered_by_automation(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    person = _person(sessions, now)
    stop = _text(sessions, config, person.phone, "STOP", now)
    start = _text(sessions, config, person.phone, "START", now + timedelta(minutes=1))
    assert (stop.needs_reply, stop.answer_kind) == (False, "automatic")
    assert (start.needs_reply, start.answer_kind) == (False, "automatic")


def test_a_plain_language_opt_out_waits_for_a_person(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    person = _person(sessions, now)
    text = _text(sessions, config, person.phone, "please stop texting me", now)
    assert text.intent == "stop" and text.needs_reply


def test_yes_matched_to_an_appointment_is_answered_but_an_unmatched_yes_waits(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    reminded = _person(sessions, now)
    with sessions() as session:
        appointment = make_appointment(
            session, session.get_one(Participant, reminded.id), now + timedelta(days=1), now
        )
        make_sent_reminder(session, appointment, now - timedelta(hours=2))
        session.commit()
    not_reminded = _person(sessions, now)
    matched = _text(sessions, config, reminded.phone, "YES", now)
    unmatched = _text(sessions, config, not_reminded.phone, "YES", now)
    assert not matched.needs_reply
    assert unmatched.needs_reply


def test_any_text_from_someone_with_an_open_flag_waits(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    person = _person(sessions, now)
    with sessions() as session:
        appointment = make_appointment(
            session, session.get_one(Participant, person.id), now + timedelta(days=1), now
        )
        make_sent_reminder(session, appointment, now - timedelta(hours=2))
        raise_flag(
            session,
            reason="delivery_failed",
            severity="high",
            now=now - timedelta(days=1),
            participant_id=person.id,
        )
        session.commit()
    text = _text(sessions, config, person.phone, "YES", now)
    assert text.needs_reply


def test_texts_from_unknown_numbers_wait_but_their_carrier_keywords_do_not(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    hello = _text(sessions, config, "+13125559999", "who is this?", now)
    stop = _text(sessions, config, "+13125559998", "STOP", now)
    assert hello.participant_id is None and hello.needs_reply
    assert not stop.needs_reply


def test_ten_missed_checkins_then_ayuda_gets_help_and_stays_in_the_coach_queue(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    """The issue's story: AYUDA gets the HELP reply at once, its reply resolves `no_reply` as
    the person's own answer, and the text waits for the coach, so they stay in the queue."""
    with sessions() as session:
        coach = make_user(session, now)
        person = make_participant(session, now, coach_id=coach.id, language="es")
        for n in range(10):
            sent = make_sent_message(session, person, now - timedelta(days=30 - 2 * n))
            session.add(
                Expectation(
                    participant_id=person.id,
                    kind="reply",
                    outbound_message_id=sent.id,
                    created_at=sent.created_at,
                    due_at=sent.created_at + timedelta(hours=48),
                    state="missed",
                    resolved_at=sent.created_at + timedelta(hours=48),
                )
            )
        raise_flag(
            session,
            reason="no_reply",
            severity="high",
            now=now - timedelta(days=20),
            participant_id=person.id,
        )
        session.commit()
        person_id, phone = person.id, person.phone
    outcome = receive(sessions, form(phone, "AYUDA"), now=now, config=config)
    assert outcome.reply is not None and "988" in outcome.reply
    with sessions() as session:
        flag = session.scalars(select(Flag).where(Flag.participant_id == person_id)).one()
        assert flag.state == "resolved"
        coach_user = session.get_one(type(coach), coach.id)
        waiting = inbox.waiting_conversations(session, coach_user)
        assert [item.participant_id for item in waiting] == [person_id]
        assert waiting[0].first_line == "AYUDA"
        assert inbox.waiting_count(session, coach_user) == 1


def test_a_staff_reply_ends_the_wait_of_every_waiting_text_with_who_and_when(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    with sessions() as session:
        coach = make_user(session, now)
        person = make_participant(session, now, coach_id=coach.id)
        session.commit()
        person_id, phone, coach_id = person.id, person.phone, coach.id
    _text(sessions, config, phone, "I got kicked out of my place", now)
    _text(sessions, config, phone, "sleeping in my car", now + timedelta(minutes=1))
    later = now + timedelta(minutes=30)
    with sessions() as session:
        raise_flag(
            session,
            reason="unanswered_text",
            severity="normal",
            now=later,
            participant_id=person_id,
        )
        ended = inbox.end_wait(
            session, kind="reply", user_id=coach_id, now=later, participant_id=person_id
        )
        session.commit()
        assert (ended.texts, ended.flag_resolved) == (2, True)
        rows = session.scalars(select(InboundMessage)).all()
        assert {(r.needs_reply, r.answer_kind, r.answered_by_user_id) for r in rows} == {
            (False, "reply", coach_id)
        }
        assert all(r.answered_at == later for r in rows)
        flag = session.scalars(select(Flag).where(Flag.reason == "unanswered_text")).one()
        assert (flag.state, flag.resolved_by_id) == ("resolved", coach_id)
        assert inbox.waiting_conversations(session, session.get_one(type(coach), coach_id)) == []


def test_no_reply_needed_for_an_unknown_number_ends_only_that_numbers_wait(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    with sessions() as session:
        boss = make_user(session, now, role="coordinator")
        session.commit()
        boss_id = boss.id
    _text(sessions, config, "+13125559999", "wrong number sorry", now)
    _text(sessions, config, "+13125559998", "is this the program?", now + timedelta(minutes=1))
    with sessions() as session:
        viewer = session.get_one(type(boss), boss_id)
        assert inbox.waiting_count(session, viewer) == 2
        ended = inbox.end_wait(
            session,
            kind="no_reply_needed",
            user_id=boss_id,
            now=now,
            sender_address="+13125559999",
        )
        session.commit()
        assert ended.texts == 1
        left = inbox.waiting_conversations(session, viewer)
        assert [item.label for item in left] == ["Unknown number +1******9998"]


def test_a_coach_sees_only_their_caseload_oldest_wait_first_and_no_unknown_numbers(
    sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    with sessions() as session:
        alex = make_user(session, now, name="Alex Rivera")
        bea = make_user(session, now, name="Bea Okafor")
        boss = make_user(session, now, role="coordinator")
        newer = make_participant(session, now, first_name="Maria", coach_id=alex.id)
        older = make_participant(session, now, first_name="Luis", coach_id=alex.id)
        other = make_participant(session, now, first_name="Jo", coach_id=bea.id)
        session.commit()
        ids = (alex.id, boss.id)
        phones = (newer.phone, older.phone, other.phone)
    _text(sessions, config, phones[1], "first\nsecond line", now - timedelta(hours=3))
    _text(sessions, config, phones[0], "hey", now - timedelta(hours=1))
    _text(sessions, config, phones[2], "hi", now - timedelta(hours=2))
    _text(sessions, config, "+13125559999", "who?", now)
    with sessions() as session:
        coach = session.get_one(type(alex), ids[0])
        mine = inbox.waiting_conversations(session, coach)
        assert [(w.label.split(" ")[0], w.first_line) for w in mine] == [
            ("Luis", "first"),
            ("Maria", "hey"),
        ]
        assert mine[0].coach_name == "Alex Rivera"
        everyone = inbox.waiting_conversations(session, session.get_one(type(alex), ids[1]))
        assert [w.label.split(" ")[0] for w in everyone] == ["Luis", "Jo", "Maria", "Unknown"]
