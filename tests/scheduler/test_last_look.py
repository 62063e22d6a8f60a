"""The sender's last look before each request, and the lease counted from the claim.

A due contact is inserted already claimed (scheduler/enqueue.py, enqueue_due), and a tick at a low
send rate can run for minutes. These tests (first written by a reviewer as failing tests) hold
the sender to the rules as they are when a request leaves: the person's status now, quiet hours
and the window now, and a lease that counts from the claim, not from the tick's start."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Flag, OutboundMessage, Participant
from bot.services.consent import opt_out
from bot.services.outbox.claims import LEASE, recover_stale
from bot.timeutil import in_quiet_hours
from bot.transport.base import SendRequest, SendResult
from scheduler.enqueue import enqueue_due
from scheduler.plan import plan
from scheduler.rate import RateLimiter
from scheduler.send import send_due
from tests.factories import make_participant
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def _people(sessions: sessionmaker[Session], count: int) -> list[int]:
    with sessions.begin() as session:
        return [
            make_participant(
                session, ENROLLED, release_date=date(2026, 3, 3), enrolled_at=ENROLLED
            ).id
            for _ in range(count)
        ]


# --- 1. a STOP that overlaps the enqueue transaction -------------------------------------


@dataclass
class StatusAtSend:
    """Before each send, waits for the concurrent STOP to commit, then records the recipient's
    status as committed at the moment the text leaves."""

    sessions: sessionmaker[Session]
    stop_done: threading.Event
    seen: list[str] = field(default_factory=list)
    name: str = "status-at-send"

    def send(self, request: SendRequest) -> SendResult:
        assert self.stop_done.wait(30)
        with self.sessions() as session:
            status = session.scalars(
                select(Participant.status).where(Participant.phone == request.to)
            ).one()
        self.seen.append(status)
        return SendResult(provider_sid=f"SM{len(self.seen):032d}", status="queued")


@pytest.mark.postgres_only
def test_a_stop_that_overlaps_the_enqueue_is_never_followed_by_a_text(
    sessions: sessionmaker[Session], config: Config
) -> None:
    (pid,) = _people(sessions, 1)
    now = utc("2026-03-03T15:05:00Z")  # 10:05 EST: the welcome is due
    with sessions.begin() as session:
        plan(session, now)
    stop_done = threading.Event()
    errors: list[BaseException] = []

    def stop_webhook() -> None:  # what bot.services.inbound does for an incoming STOP
        try:
            with sessions.begin() as session:
                participant = session.get(Participant, pid)
                assert participant is not None
                opt_out(session, participant, now=now, method="keyword", wording="STOP")
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            stop_done.set()

    # The STOP arrives while the tick's enqueue transaction holds the due contact's lock. It
    # does not wait for that lock (opt_out skips locked rows) and commits at once; the tick
    # then commits its row already claimed, and the sender's last look must catch it.
    fired: list[bool] = []

    def insert_then_stop(*args: Any, **kwargs: Any) -> Any:
        result = enqueue_due(*args, **kwargs)  # inserted, its transaction still open
        if not fired:
            fired.append(True)
            threading.Thread(target=stop_webhook, daemon=True).start()
            assert stop_done.wait(10), "the STOP waited for the tick's locks"
        return result

    transport = StatusAtSend(sessions, stop_done)
    send_due(
        sessions,
        transport,  # type: ignore[arg-type]
        config,
        now,
        worker_id="w:1",
        enqueue=insert_then_stop,
    )
    stop_done.wait(30)
    assert not errors
    assert transport.seen == []  # nothing left for them
    send_due(sessions, transport, config, now, worker_id="w:1")  # type: ignore[arg-type]
    assert transport.seen == []  # the next pass's claim settles the row it gave back
    with sessions() as session:
        row = session.scalars(
            select(OutboundMessage).where(OutboundMessage.participant_id == pid)
        ).one()
        assert (row.status, row.error_message) == ("cancelled", "participant_opted_out")


# --- 2. a long tick is judged by the time as it goes on -----------------------


@dataclass
class FakeClock:
    now: float

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SlowProvider:
    """Each send takes `latency` seconds of the fake clock (Twilio answers in 0.2-10 s)."""

    clock: FakeClock
    latency: float
    left_at: list[float] = field(default_factory=list)
    during_send: Any = None
    name: str = "slow"

    def send(self, request: SendRequest) -> SendResult:
        self.left_at.append(self.clock.now)
        if self.during_send is not None:
            self.during_send()
        self.clock.now += self.latency
        return SendResult(provider_sid=f"SM{len(self.left_at):032d}", status="queued")


def test_a_long_tick_sends_nothing_in_quiet_hours(
    sessions: sessionmaker[Session], config: Config
) -> None:
    _people(sessions, 40)
    start = datetime(2026, 3, 3, 20, 59, 40, tzinfo=NEW_YORK).astimezone(UTC)
    with sessions.begin() as session:
        plan(session, start)  # everyone's welcome (10:00 today, 7-day window) is due
    clock = FakeClock(start.timestamp())
    limiter = RateLimiter(sessions, 1.0, clock=clock.clock, sleep=clock.sleep)
    transport = SlowProvider(clock, latency=0.3)
    send_due(sessions, transport, config, start, worker_id="w:1", limiter=limiter)  # type: ignore[arg-type]
    assert transport.left_at  # the tick did send
    in_quiet = [
        t
        for t in transport.left_at
        if in_quiet_hours(datetime.fromtimestamp(t, UTC), NEW_YORK, time(21), time(8))
    ]
    assert in_quiet == [], f"{len(in_quiet)} of {len(transport.left_at)} texts left after 21:00"


def test_a_second_workers_tick_does_not_declare_a_live_claim_stale(
    sessions: sessionmaker[Session], config: Config
) -> None:
    _people(sessions, 70)
    start = utc("2026-03-03T15:05:00Z")
    with sessions.begin() as session:
        plan(session, start)
    clock = FakeClock(start.timestamp())
    limiter = RateLimiter(sessions, 1.0, clock=clock.clock, sleep=clock.sleep)
    transport = SlowProvider(clock, latency=5.0)  # a slow provider, under the 10 s timeout
    recovered: list[int] = []

    def other_worker_starts_a_tick() -> None:
        # Worker B's tick begins (its `now` is the wall clock) while A is still sending.
        if not recovered and clock.now > start.timestamp() + LEASE.total_seconds() + 10:
            with sessions.begin() as session:
                recovered.append(recover_stale(session, datetime.fromtimestamp(clock.now, UTC)))

    transport.during_send = other_worker_starts_a_tick
    send_due(sessions, transport, config, start, worker_id="w:a", limiter=limiter)  # type: ignore[arg-type]
    assert recovered, "the tick was shorter than the lease"
    with sessions() as session:
        unknown_flags = session.scalars(select(Flag).where(Flag.reason == "delivery_unknown")).all()
        statuses = set(session.scalars(select(OutboundMessage.status)))
    # Every text was sent and its SID recorded by worker A, claimed seconds before it left.
    assert statuses <= {"queued", "sent"}
    assert unknown_flags == [], f"{recovered[0]} live claim(s) marked unknown and flagged"
