"""PostgreSQL's sender: the batch read ahead by a helper thread (scheduler/enqueue.py,
ReadAhead) and the successes committed by another (scheduler/send.py, OutcomeWriter). Written by
a reviewer of those threads: what they must never lose, and what must never leave while they hold locks."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import OutboundMessage, Participant
from bot.services.consent import opt_out
from bot.transport.base import SendRequest, SendResult, TransportError
from scheduler.enqueue import enqueue_due
from scheduler.plan import plan
from scheduler.send import send_due
from tests.factories import make_participant
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = utc("2026-03-03T15:05:00Z")  # 10:05 EST on day 1: each person's welcome is due


def _people(sessions: sessionmaker[Session], count: int) -> list[int]:
    with sessions.begin() as session:
        ids = [
            make_participant(
                session, ENROLLED, release_date=date(2026, 3, 3), enrolled_at=ENROLLED
            ).id
            for _ in range(count)
        ]
        plan(session, NOW)
        return ids


@dataclass
class UnsubscribedFirst:
    """Answers the first send with 21610 (the person told the carrier STOP)."""

    attempts: list[SendRequest] = field(default_factory=list)
    name: str = "unsubscribed-first"

    def send(self, request: SendRequest) -> SendResult:
        self.attempts.append(request)
        if len(self.attempts) == 1:
            raise TransportError("21610", permanent=True, code=21610)
        return SendResult(provider_sid=f"SM{len(self.attempts):032d}", status="queued")


@pytest.mark.postgres_only
def test_a_failed_read_ahead_does_not_lose_the_current_batchs_error_outcome(
    sessions: sessionmaker[Session], config: Config
) -> None:
    # Batches of one: the second person's welcome is the batch read ahead while the first
    # person's is sent. The read-ahead fails (a database error, say); the first send is
    # answered 21610. The read-ahead's error must surface, and the 21610 must still be
    # recorded (the person opted out, the row failed), not left `sending` to become
    # `unknown` five minutes later with the person still active.
    first, _ = _people(sessions, 2)

    def failing_in_the_helper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith("send-enqueue"):
            raise RuntimeError("read-ahead failed")
        return enqueue_due(*args, **kwargs)

    transport = UnsubscribedFirst()
    with pytest.raises(RuntimeError, match="read-ahead failed"):
        send_due(
            sessions,
            transport,  # type: ignore[arg-type]
            config,
            NOW,
            worker_id="w:1",
            batch=1,
            enqueue=failing_in_the_helper,
        )
    assert len(transport.attempts) == 1
    with sessions() as session:
        row = session.scalars(
            select(OutboundMessage).where(OutboundMessage.participant_id == first)
        ).one()
        assert (row.status, row.error_code) == ("failed", 21610)
        participant = session.get(Participant, first)
        assert participant is not None and participant.status == "opted_out"


@dataclass
class StopDuringReadAhead:
    """On the first send, waits until the helper has inserted the next batch (its transaction
    open, the contacts locked), then lets a STOP for `victim` run and commit; records every
    recipient's status as committed when its text leaves."""

    sessions: sessionmaker[Session]
    inserted: threading.Event
    stop: Any
    seen: list[tuple[str, str]] = field(default_factory=list)
    name: str = "stop-during-read-ahead"

    def send(self, request: SendRequest) -> SendResult:
        if not self.seen:
            assert self.inserted.wait(10), "the next batch was not read ahead"
            self.stop()
        with self.sessions() as session:
            status = session.scalars(
                select(Participant.status).where(Participant.phone == request.to)
            ).one()
        self.seen.append((request.to, status))
        return SendResult(provider_sid=f"SM{len(self.seen):032d}", status="queued")


@pytest.mark.postgres_only
def test_a_stop_while_the_next_batch_is_read_ahead_is_never_followed_by_a_text(
    sessions: sessionmaker[Session], config: Config
) -> None:
    # Batches of one: the second person's welcome is read ahead, inserted `sending` in an open
    # transaction holding its contact's lock, while the first person's is sent. Their STOP
    # lands then: it must not wait for that transaction (opt_out skips locked rows), and the
    # row the read-ahead then commits must never leave (the last look reads the status).
    _, second = _people(sessions, 2)
    inserted = threading.Event()

    def insert_and_tell(*args: Any, **kwargs: Any) -> Any:
        result = enqueue_due(*args, **kwargs)  # inserted, its transaction still open
        if threading.current_thread().name.startswith("send-enqueue"):
            inserted.set()
        return result

    done = threading.Event()
    errors: list[BaseException] = []

    def stop_webhook() -> None:
        try:
            with sessions.begin() as session:
                participant = session.get(Participant, second)
                assert participant is not None
                opt_out(session, participant, now=NOW, method="keyword", wording="STOP")
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            done.set()

    def stop() -> None:
        threading.Thread(target=stop_webhook, daemon=True).start()
        assert done.wait(10), "the STOP waited for the read-ahead's locks"

    transport = StopDuringReadAhead(sessions, inserted, stop)
    for _ in range(2):
        send_due(
            sessions,
            transport,  # type: ignore[arg-type]
            config,
            NOW,
            worker_id="w:1",
            batch=1,
            enqueue=insert_and_tell,
        )
    assert not errors
    assert [status for _, status in transport.seen] == ["active"]
    with sessions() as session:
        row = session.scalars(
            select(OutboundMessage).where(OutboundMessage.participant_id == second)
        ).one()
        assert row.status == "cancelled"


@dataclass
class Recording:
    sent: list[SendRequest] = field(default_factory=list)
    name: str = "recording"

    def send(self, request: SendRequest) -> SendResult:
        self.sent.append(request)
        return SendResult(provider_sid=f"SM{len(self.sent):032d}", status="queued")


@pytest.mark.postgres_only
def test_a_stop_signal_during_a_batch_leaves_the_batch_read_ahead_due_and_unclaimed(
    sessions: sessionmaker[Session], config: Config
) -> None:
    people = _people(sessions, 3)
    transport = Recording()
    send_due(
        sessions,
        transport,  # type: ignore[arg-type]
        config,
        NOW,
        worker_id="w:1",
        should_stop=lambda: len(transport.sent) >= 1,  # SIGTERM during the first batch
        batch=1,
    )
    assert len(transport.sent) == 1
    with sessions() as session:
        rows = session.execute(select(OutboundMessage.participant_id, OutboundMessage.status)).all()
        assert [status for _, status in rows] == ["queued"]  # nothing left `sending`
    # The next tick sends the others once each.
    send_due(sessions, transport, config, NOW, worker_id="w:1", batch=1)  # type: ignore[arg-type]
    assert sorted(r.to for r in transport.sent) == sorted(set(r.to for r in transport.sent))
    with sessions() as session:
        by_person = dict(
            session.execute(select(OutboundMessage.participant_id, OutboundMessage.status)).all()
        )
    assert by_person == {pid: "queued" for pid in people}
