from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
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


def _wait_until_blocked(session: Session) -> None:
    """Until some backend waits on a lock (the other session's INSERT on the same key)."""
    for _ in range(2000):
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        session.rollback()
        if waiting:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the second enqueue never waited on the first")


@pytest.mark.postgres_only
@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
def test_an_enqueue_waiting_on_an_uncommitted_twin_ends_with_exactly_one_row(
    sessions: sessionmaker[Session], session: Session, now: datetime, first_commits: bool
) -> None:
    # Two workers enqueue the same key at once: the second waits on the first's uncommitted
    # row; it gets that row if the first commits, and inserts its own if the first rolls back.
    first = sessions()
    first_id, _ = _enqueue(first, now, "k:twin")
    outcome: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with sessions() as other:
                outcome.append(_enqueue(other, now, "k:twin"))
                other.commit()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    try:
        _wait_until_blocked(session)
    finally:
        if first_commits:
            first.commit()
        else:
            first.rollback()
        first.close()
        thread.join(timeout=30)
    assert not errors
    [(second_id, created)] = outcome
    assert created is not first_commits
    assert (second_id == first_id) is first_commits
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 1
