"""The shared send rate: never more than `rate` sends in any 1-second window, across workers.

A window is any half-open interval [t, t + 1 s) of the sender's clock, t any real number (the
most crowded one starts at a send, so `_max_in_window` only tries those), the same definition
as bench/send_rate.py.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import OutboundMessage
from bot.services.outbox import enqueue
from bot.services.outbox.claims import SendCounts, claim_batch
from bot.transport.base import SendRequest, SendResult
from scheduler.rate import BATCH, RESERVE_MAX, Priority, RateLimiter
from scheduler.send import send_batch
from tests.factories import make_participant
from tests.scheduler.helpers import max_in_window

NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
RATE = 10


class SimulatedClock:
    """Time that moves only when someone sleeps; `late` lists extra delays for the next sleeps
    (a process the OS did not schedule in time)."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.late: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + (self.late.pop(0) if self.late else 0.0)


class ClockedTransport:
    """Records the instant each request is handed over, on the limiter's clock."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.at: list[float] = []

    def send(self, request: SendRequest) -> SendResult:
        self.at.append(self.clock())
        return SendResult(provider_sid=f"SM{len(self.at):032d}", status="queued")


def _pending(sessions: sessionmaker[Session], count: int) -> None:
    with sessions.begin() as session:
        for i in range(count):
            participant = make_participant(session, NOW, phone=f"+1312555{7000 + i:04d}")
            enqueue(
                session,
                idempotency_key=f"rate-test:{i}",
                purpose="crisis_reply",
                channel="sms",
                to_address=participant.phone,
                body="x",
                now=NOW,
                participant_id=participant.id,
                ignore_quiet_hours=True,
            )


def _send(
    sessions: sessionmaker[Session],
    config: Config,
    transport: ClockedTransport,
    limiter: RateLimiter,
    worker: str,
    limit: int,
) -> None:
    counts = SendCounts()
    with sessions.begin() as session:
        claims, _ = claim_batch(session, NOW, worker, config, counts, limit)
    assert len(claims) == limit
    send_batch(
        sessions,
        transport,
        NOW,
        claims,
        worker_id=worker,
        limiter=limiter,
        counts=counts,
        config=config,
    )
    assert counts.sent == limit


def test_a_send_woken_late_never_shares_a_window_with_rate_more(
    sessions: sessionmaker[Session], config: Config
) -> None:
    # Worker B sends on its slot; worker A's slot is next, but A wakes 50 ms late; then B sends
    # ten more on its slots. Sent late, A's text and B's ten would all leave within one second.
    clock = SimulatedClock(NOW.timestamp())
    transport = ClockedTransport(clock)
    worker_a = RateLimiter(sessions, RATE, clock=clock, sleep=clock.sleep)
    worker_b = RateLimiter(sessions, RATE, clock=clock, sleep=clock.sleep)
    _pending(sessions, 12)

    _send(sessions, config, transport, worker_b, "b", 1)
    clock.late = [0.05]
    _send(sessions, config, transport, worker_a, "a", 1)
    _send(sessions, config, transport, worker_b, "b", 10)

    assert len(transport.at) == 12
    assert max_in_window(transport.at) <= RATE
    assert worker_a.missed == 1  # the late wake-up was noticed, not sent on


def test_a_stop_while_slots_are_missed_gives_the_claim_back(
    sessions: sessionmaker[Session], config: Config
) -> None:
    # A worker that is never scheduled in time keeps missing its slots; SIGTERM must not wait
    # for an on-time one, and the unsent claim must go back to pending.
    clock = SimulatedClock(NOW.timestamp())
    clock.late = [0.05] * 100
    transport = ClockedTransport(clock)
    limiter = RateLimiter(sessions, RATE, clock=clock, sleep=clock.sleep)
    _pending(sessions, 1)
    counts = SendCounts()
    with sessions.begin() as session:
        claims, _ = claim_batch(session, NOW, "a", config, counts, 1)
    limiter.next_slot()  # takes the current slot: every later one means a wait, which oversleeps

    send_batch(
        sessions,
        transport,
        NOW,
        claims,
        worker_id="a",
        limiter=limiter,
        counts=counts,
        config=config,
        should_stop=lambda: limiter.missed >= 3,
    )

    assert transport.at == []
    assert limiter.missed == 3
    with sessions() as session:
        assert session.scalars(select(OutboundMessage.status)).all() == ["pending"]


def test_concurrent_workers_release_at_most_k_sends_per_k_slots(
    sessions: sessionmaker[Session],
) -> None:
    # Three threads on the real clock (about 0.6 s), each sometimes "descheduled" for 30 ms
    # after its slot. The property checked is the one the window bound follows from:
    # any k + 1 sends are released at least k slots minus the tolerance apart (k = rate gives
    # "at most `rate` in any second"). What is checked is the clock reading that let each send
    # go, so the property holds for every thread schedule: it cannot pass or fail by timing
    # luck; only how many slots are missed depends on the machine.
    rate, workers, per_worker = 100, 3, 20
    released: list[float] = []
    missed: list[int] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local = threading.local()
        sleeps = iter(range(1_000_000))

        def clock() -> float:
            local.last = time.time()
            return float(local.last)

        def sleep(seconds: float) -> None:
            # Every fourth wake-up (the first included) comes 30 ms late, beyond the tolerance;
            # the others up to 5 ms late, within it.
            late = 0.03 if next(sleeps) % 4 == 0 else rng.uniform(0.0, 0.005)
            time.sleep(seconds + late)

        limiter = RateLimiter(sessions, rate, clock=clock, sleep=sleep)
        for _ in range(per_worker):
            while not limiter.wait_for(limiter.next_slot()):
                pass  # a missed slot: take another, as send_batch does
            with lock:
                released.append(local.last)
        limiter.close()
        with lock:
            missed.append(limiter.missed)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(released) == workers * per_worker
    reference = RateLimiter(sessions, rate)
    ordered = sorted(released)
    for k in range(1, len(ordered)):
        # Slots are whole microseconds in the database: allow that rounding.
        least = k * reference.interval - reference.late_tolerance - 1e-6
        assert all(b - a >= least for a, b in zip(ordered, ordered[k:], strict=False)), k
    assert sum(missed) > 0  # the late wake-ups were noticed, not sent on


@pytest.mark.postgres_only
def test_a_reservation_on_a_lost_connection_reconnects_once_and_takes_the_next_slot(
    sessions: sessionmaker[Session],
) -> None:
    # The limiter holds one connection for its reservations; an idle timeout or a server
    # restart takes it away between two of them, where a pooled checkout's ping would have
    # noticed.
    clock = SimulatedClock(NOW.timestamp())
    with RateLimiter(sessions, 1000.0, clock=clock, sleep=clock.sleep) as limiter:
        first = limiter.reserve(5)
        assert limiter._connection is not None
        backend = limiter._connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with sessions() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        again = limiter.reserve(1)
        assert limiter._connection is not None
        assert limiter._connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend
    # The clock stood still, so the next slot is exactly the one after the first five: the
    # statement on the lost connection took none, the retry took one.
    assert again == pytest.approx(first + 5 * limiter.interval, abs=1e-6)
    assert limiter._connection is None  # given back when the block ended


def test_consecutive_reservations_are_never_closer_than_the_interval(
    sessions: sessionmaker[Session],
) -> None:
    # The database keeps whole microseconds. At 7/s the interval is 145,714.29 us: rounded to
    # nearest, the next reservation would start 0.29 us early, inside the last slot's interval.
    clock = SimulatedClock(NOW.timestamp())
    with RateLimiter(sessions, 7.0, clock=clock, sleep=clock.sleep) as limiter:
        first = limiter.reserve(1)
        second = limiter.reserve(1)
    gap_us = round(second * 1_000_000) - round(first * 1_000_000)
    assert gap_us >= limiter.interval * 1_000_000
    assert gap_us == 145_715


def test_a_tolerance_beyond_the_guard_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(sessions, RATE, guard=0.02, late_tolerance=0.03)


def test_claim_batches_follow_the_rate_up_to_batch_and_reservations_stay_small(
    sessions: sessionmaker[Session],
) -> None:
    def limiter(rate: float) -> RateLimiter:
        return RateLimiter(sessions, rate)

    assert (limiter(10).batch_size(), limiter(10).reserve_size()) == (5, 1)
    assert limiter(1000).batch_size() == 500
    # A rate that is not the limit: big claim batches (few commits), small reservations.
    assert limiter(1_000_000).batch_size() == BATCH > RESERVE_MAX
    assert limiter(1_000_000).reserve_size() == RESERVE_MAX


def test_a_routine_sender_leaves_the_next_slot_to_an_urgent_reservation_made_before_it(
    sessions: sessionmaker[Session],
) -> None:
    # The routine sender used a slot; an urgent text arrives before its next one is due. Just
    # in time, the routine sender had not reserved that next slot yet: the urgent text takes it.
    clock = SimulatedClock(NOW.timestamp())
    urgent = RateLimiter(sessions, RATE, clock=clock, sleep=clock.sleep)
    urgent_slots: list[float] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if not urgent_slots:  # the urgent text arrives while the routine sender waits
            urgent_slots.append(urgent.next_slot())

    routine = RateLimiter(sessions, RATE, clock=clock, sleep=sleep, just_in_time=True)
    first = routine.next_slot()
    assert routine.wait_for(first)
    second = routine.next_slot()

    assert urgent_slots == [pytest.approx(first + routine.interval, abs=1e-5)]
    assert second == pytest.approx(first + 2 * routine.interval, abs=1e-5)


def test_a_routine_sender_waits_for_the_urgent_lane_of_its_process_before_reserving(
    sessions: sessionmaker[Session],
) -> None:
    priority = Priority()
    routine = RateLimiter(sessions, RATE, just_in_time=True, priority=priority)
    urgent = RateLimiter(sessions, RATE)
    slots: dict[str, float] = {}
    with priority.urgent():
        waiting = threading.Thread(target=lambda: slots.setdefault("routine", routine.next_slot()))
        waiting.start()
        waiting.join(timeout=0.2)
        assert waiting.is_alive()  # it waits for the lane
        slots["urgent"] = urgent.next_slot()
    waiting.join(timeout=30)
    routine.close()
    urgent.close()

    assert slots["urgent"] < slots["routine"]
