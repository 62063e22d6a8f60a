from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.models import InboundMessage, OutboundMessage
from bot.models.messages import OUTBOUND_STATUSES
from bot.services.conversation import STATUS_LABELS, THREAD_PAGE, load_thread
from tests.factories import make_participant


def _in(session: Session, pid: int, at: datetime, n: int) -> None:
    session.add(
        InboundMessage(
            message_sid=f"SM{n}",
            from_address="+13125550100",
            to_address="+15550100000",
            channel="sms",
            body=f"in {n}",
            raw_form={},
            participant_id=pid,
            received_at=at,
        )
    )


def _out(session: Session, pid: int, at: datetime, n: int) -> None:
    session.add(
        OutboundMessage(
            idempotency_key=f"k{n}",
            participant_id=pid,
            purpose="crisis_reply",
            channel="sms",
            to_address="+13125550100",
            body=f"out {n}",
            segments=1,
            status="sent",
            send_after=at,
            created_at=at,
            sent_at=at,
            attempts=1,
        )
    )


def test_a_reply_stored_at_the_same_instant_follows_the_text_it_answers(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    _out(session, person.id, now, 1)
    _in(session, person.id, now, 1)
    session.flush()
    thread, more = load_thread(session, person)
    assert [(e.direction, e.body) for e in thread] == [("in", "in 1"), ("out", "out 1")]
    assert more is False


def test_thread_shows_the_latest_page_oldest_first_and_says_there_is_more(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    for n in range(THREAD_PAGE + 5):
        _in(session, person.id, now + timedelta(minutes=n), n)
    session.flush()
    thread, more = load_thread(session, person)
    assert more is True
    assert len(thread) == THREAD_PAGE
    assert thread[0].body == "in 5" and thread[-1].body == f"in {THREAD_PAGE + 4}"
    older, more = load_thread(session, person, before=thread[0].at)
    assert [e.body for e in older] == [f"in {n}" for n in range(5)]
    assert more is False


def test_every_outbound_status_has_words_for_the_coach() -> None:
    assert set(STATUS_LABELS) == set(OUTBOUND_STATUSES)
    assert all(label and "_" not in label for label in STATUS_LABELS.values())
