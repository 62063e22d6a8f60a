from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.models import OutboundMessage
from bot.services.outbox import enqueue
from tests.factories import make_participant


def _enqueue(session: Session, now: datetime, key: str, **extra: object) -> tuple[int, bool]:
    result = enqueue(
        session,
        idempotency_key=key,
        purpose="reply",
        channel="sms",
        to_address="+13125550100",
        body="Thanks, we got it.",
        now=now,
        **extra,  # type: ignore[arg-type]
    )
    return result.message.id, result.created


def test_the_same_key_twice_queues_one_message_and_returns_it(
    session: Session, now: datetime
) -> None:
    first_id, first_created = _enqueue(session, now, "k:1")
    again_id, again_created = _enqueue(session, now + timedelta(minutes=1), "k:1")
    assert (first_created, again_created) == (True, False)
    assert again_id == first_id
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 1


def test_a_key_another_session_committed_leaves_this_transaction_usable(
    sessions: sessionmaker[Session], session: Session, now: datetime
) -> None:
    # Losing the race must not poison the caller's transaction: its other work still commits.
    with sessions() as other:
        _enqueue(other, now, "k:race")
        other.commit()
    person = make_participant(session, now)
    _id, created = _enqueue(session, now, "k:race")
    assert not created
    session.commit()
    assert session.get(type(person), person.id) is not None


def test_a_message_recorded_as_already_sent_is_never_pending(
    session: Session, now: datetime
) -> None:
    message_id, _ = _enqueue(session, now, "reply:SM1", already_sent_at=now)
    session.commit()
    session.expire_all()
    row = session.get_one(OutboundMessage, message_id)
    assert (row.status, row.sent_at, row.status_updated_at) == ("sent", now, now)


def test_a_queued_message_waits_for_a_worker(session: Session, now: datetime) -> None:
    message_id, _ = _enqueue(session, now, "k:2")
    session.commit()
    session.expire_all()
    row = session.get_one(OutboundMessage, message_id)
    assert (row.status, row.sent_at, row.send_after) == ("pending", None, now)
