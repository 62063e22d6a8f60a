"""The urgent lane (DESIGN.md §1, "Urgent first"): pages to staff, crisis replies that go
through the outbox, and staff replies leave within seconds of being queued while the worker
runs, even when a tick is in the middle of a backlog. Routine traffic waits.

Which rows: urgency is the purpose (bot/models/messages.py URGENT_PURPOSES: `page`,
`crisis_reply`, `coach_reply`), so whoever enqueues them (paging and the ladder, the webhook's
late replies, the dashboard's and the inbox's staff replies) marks nothing. Due pending rows
of those purposes are indexed on their own (migration 0017_outbox_priority), so the lane's
poll reads only them, however large the routine backlog.

How (`UrgentLane`, a thread of `checkin worker`, scheduler/worker.py): every POLL_SECONDS it
probes for due urgent rows (`urgent_due`, one index probe) and, when there are some, runs
`send_urgent`: claim them with the tick's own claim (bot/services/outbox/claims.py
`claim_batch(urgent_only=True)`: sendability.decide, so never an opted-out number, paused or
closed people get only crisis replies, a window is never overrun; quiet hours hold a row only
if its writer did not set `ignore_quiet_hours`, which pages for urgent flags, crisis replies
and staff replies sent "now" all set), and send them with the tick's own `send_batch` (the
last look, the outcomes through bot/services/outbox/outcomes.py, the release of what was
never handed over). Its own database sessions, its own RateLimiter (its own connection), its
own transport instance (an HTTP client per thread).

The next rate slot (scheduler/rate.py): while the lane holds due urgent rows it holds the
process's `Priority`, and the tick's routine sender, which reserves each slot just in time (at
most RESERVE_LEAD_SECONDS ahead), waits for it before its next reservation. So an urgent text
leaves at the first slot after the one a routine send already holds: at 1 message/s about
1 s after its claim, plus at most POLL_SECONDS to be seen. The rate holds for the combined
stream because every slot comes from the one shared row.

Exactly once: the lane and any tick (this worker's or another's) claim through the same
conditional UPDATE (`status = 'pending'` in its WHERE; PostgreSQL also `FOR UPDATE SKIP
LOCKED`, SQLite BEGIN IMMEDIATE), so a row is claimed by exactly one of them; a tick that
claims an urgent row first simply sends it in its batch (`checkin tick` without a worker still
sends everything). A crash leaves the lane's claims `sending`, and recover_stale turns them
`unknown` after the lease, never resending; a stop (SIGTERM) gives back what was never handed
to the transport. The lane's claims are `claimed_by` "<worker id>:urgent".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import session_scope
from bot.log import log_event
from bot.services.outbox.claims import SendCounts, claim_batch, urgent_due
from bot.transport.base import Transport

from .rate import Priority, RateLimiter
from .send import send_batch

log = logging.getLogger(__name__)

# How often the lane looks for due urgent rows when it found none.
POLL_SECONDS = 0.5
# Most urgent rows claimed at once (one per recipient); more are claimed after they are sent.
LANE_BATCH = 20
# After an error the lane waits this long before it looks again (the error is logged).
ERROR_PAUSE_SECONDS = 2.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def send_urgent(
    sessions: sessionmaker[Session],
    transport: Transport,
    config: Config,
    *,
    worker_id: str,
    limiter: RateLimiter | None,
    priority: Priority | None = None,
    clock: Callable[[], datetime] = _utcnow,
    should_stop: Callable[[], bool] = lambda: False,
    limit: int = LANE_BATCH,
) -> tuple[SendCounts, int]:
    """One pass of the lane: claim the due urgent rows and send them, each at the next rate
    slot, until none is due. Returns the counts and how many rows were looked at (0: nothing
    was due). Each claim is judged at `clock()` as it is then, so a row given back at the last
    look is decided afresh."""
    counts = SendCounts()
    looked = 0
    with sessions() as session:
        if not urgent_due(session, clock()):
            return counts, 0
    with priority.urgent() if priority is not None else nullcontext():
        while not should_stop():
            now = clock()
            with session_scope(sessions) as session:
                claims, seen = claim_batch(
                    session, now, worker_id, config, counts, limit, urgent_only=True
                )
            if seen == 0:
                break
            looked += seen
            if claims and send_batch(
                sessions,
                transport,
                now,
                claims,
                worker_id=worker_id,
                limiter=limiter,
                counts=counts,
                config=config,
                should_stop=should_stop,
                current_time=clock,
            ):
                break  # out of time since the claim: the next pass decides with a fresh clock
    return counts, looked


class UrgentLane:
    """`send_urgent` in a thread, every POLL_SECONDS, until `stop()`. `checkin worker` starts
    one next to its ticks (scheduler/worker.py)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transport: Transport,
        config: Config,
        *,
        worker_id: str,
        priority: Priority | None = None,
        poll_seconds: float = POLL_SECONDS,
        rate_limited: bool = True,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.sessions, self.transport, self.config = sessions, transport, config
        self.worker_id = worker_id
        self.priority = priority
        self.poll_seconds = poll_seconds
        self.rate_limited = rate_limited
        self.clock = clock  # the instant claims are judged at (tests fix it)
        self.counts = SendCounts()  # everything the lane did, for the worker's last line
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="urgent-lane", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the lane to stop after the step it is in (one send); returns at once."""
        self._stopping.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the lane and wait for its thread: a send in flight finishes (the HTTP timeout
        is 10 s), claims never handed over are given back."""
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        log_event(log, "urgent.started", worker=self.worker_id, poll_seconds=self.poll_seconds)
        limiter = (
            RateLimiter(self.sessions, self.config.send_rate_per_second)
            if self.rate_limited
            else None
        )
        try:
            while not self._stopping.is_set():
                pause = self.poll_seconds
                try:
                    counts, looked = send_urgent(
                        self.sessions,
                        self.transport,
                        self.config,
                        worker_id=self.worker_id,
                        limiter=limiter,
                        priority=self.priority,
                        clock=self.clock,
                        should_stop=self._stopping.is_set,
                    )
                except Exception as exc:
                    # One bad pass must not end the lane; the ticks still send everything.
                    log.exception("urgent lane pass failed")
                    log_event(log, "urgent.failed", logging.ERROR, error=type(exc).__name__)
                    pause = ERROR_PAUSE_SECONDS
                else:
                    if looked:
                        self.counts.add(counts)
                        log_event(log, "urgent.sent", worker=self.worker_id, **asdict(counts))
                        pause = 0.0  # more may have come meanwhile
                if pause:
                    self._stopping.wait(pause)
        finally:
            if limiter is not None:
                limiter.close()
            log_event(log, "urgent.stopped", worker=self.worker_id, **asdict(self.counts))
