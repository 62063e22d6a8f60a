"""The send rate: one limit shared by every worker through one database row.

Senders reserve their slots from the single `send_rate_slots` row and never send more than
LATE_TOLERANCE after a slot (see RateLimiter), so no 1-second window holds more than the
configured messages per second, across any number of workers. A claim batch (scheduler/send.py)
is what the rate sends in CLAIM_WINDOW_SECONDS, so a claim-time check is never more than about
that old when the text leaves.

Urgent first (DESIGN.md §1; scheduler/urgent.py): pages, crisis replies and staff replies take
the next slot nobody has reserved yet, ahead of routine traffic. Two things make "the next
slot" soon:
- a routine sender reserves just in time (`just_in_time`): its next slot is reserved
  RESERVE_LEAD_SECONDS before it is due, not as soon as its previous one is used, so it never
  holds a reservation more than that far ahead (at ordinary rates; above 1 / lead per second a
  reservation covers at most RESERVE_WINDOW_SECONDS anyway). An urgent reservation made in the
  meantime gets the slot and the routine sender the one after: across every worker, an urgent
  text waits at most about one interval per worker for its slot.
- in one process, the lane holds a `Priority` while it has due urgent rows, and the routine
  sender waits for it before reserving: the lane's slots come first even inside the lead.
The rate itself is unchanged: every slot, urgent or routine, comes from the one row.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Engine, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.db import session_scope
from bot.models import SendRateSlot

# Most messages in one claim batch. Only a tick whose configured rate is not the limit (above
# BATCH / CLAIM_WINDOW_SECONDS = 4,000/s) reaches it; there each batch's fixed cost (three
# commits and a dozen statements, whatever its size) was a quarter of the tick at 500. A crash
# still leaves at most one batch `unknown`, at most CLAIM_WINDOW_SECONDS of sending.
BATCH = 2000
# Most rate slots in one reservation (see RateLimiter.reserve_size).
RESERVE_MAX = 500
# A batch is what the configured rate sends in this long (at least one message).
CLAIM_WINDOW_SECONDS = 0.5
# A reservation covers at most this much sending time (see RateLimiter.reserve_size).
RESERVE_WINDOW_SECONDS = 0.01
# "Never above the rate in any 1-second window", by construction (see RateLimiter): slots are
# spaced (1 + RATE_GUARD) / rate apart across all workers, so any `rate` + 1 of them span
# 1 + RATE_GUARD seconds, and a send leaves only if the clock, read just before the transport
# call, is at most LATE_TOLERANCE past its slot (a missed slot is dropped, never used late). Any
# `rate` + 1 sends then leave at least 1 + RATE_GUARD - LATE_TOLERANCE >= 1 s apart. Exactly
# 1/rate spacing with late sends allowed is what overfilled windows: a send that left 20+ ms late
# while the next worker's left on time put rate + 1 sends in the window starting at the late one.
# The mean rate is at most 1/(1 + RATE_GUARD) = 98 % of the setting. The RATE_GUARD -
# LATE_TOLERANCE left over (10 ms) absorbs the variation in the time a request takes from that
# clock read to the provider (SDK, socket), which the sender cannot see.
RATE_GUARD = 0.02
LATE_TOLERANCE = 0.01
# A just-in-time (routine) sender reserves its next slot this long before it is due: long
# enough for the reservation's round trip under load (a slot reserved too late starts out
# missed and costs an interval), short enough that an urgent text rarely finds the next slot
# taken.
RESERVE_LEAD_SECONDS = 0.1
# The longest a routine sender waits for the urgent lane before reserving anyway: the priority
# is a preference, never a way for a stuck lane to stop routine sending.
YIELD_MAX_SECONDS = 10.0


class Priority:
    """The urgent lane's claim on the next rate slots within one worker process.

    The lane holds it (`urgent()`) from the moment it finds due urgent rows until it has sent
    them; a routine sender calls `wait_until_idle` before each reservation, so the lane's
    reservations come first and routine traffic waits. Threads only: across processes the
    just-in-time reservation is what keeps the next slot free (see the module docstring)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._holders = 0

    @contextmanager
    def urgent(self) -> Iterator[None]:
        with self._condition:
            self._holders += 1
        try:
            yield
        finally:
            with self._condition:
                self._holders -= 1
                self._condition.notify_all()

    @property
    def busy(self) -> bool:
        with self._condition:
            return self._holders > 0

    def wait_until_idle(self, timeout: float = YIELD_MAX_SECONDS) -> bool:
        """Return once no urgent work is held (True), or after `timeout` (False)."""
        with self._condition:
            return self._condition.wait_for(lambda: self._holders == 0, timeout)


class RateLimiter:
    """A global send rate shared by every worker through one database row.

    `reserve(n)` takes n consecutive slots under the row lock (PostgreSQL: one autocommitted
    upsert; SQLite: BEGIN IMMEDIATE): `first = max(next_at, clock)`, `next_at` becomes
    `first + n * interval`. So slots never overlap, whatever the number of workers, and there
    is no burst after idle time (a token bucket with capacity one); `interval` is
    (1 + guard) / rate.

    A worker sends on its slots through `next_slot` and `wait_for`: `wait_for` sleeps until
    the slot (re-reading the clock after every sleep, so nothing leaves early) and then says
    whether the clock is still within `late_tolerance` of it. A slot missed by more than that
    (the process was not scheduled in time, a commit or the previous send took too long) is
    dropped and the worker takes another; a late send is what would overfill a window. With
    `late_tolerance <= guard`, the release instants (the clock read that allowed each send) of
    any `rate` + 1 sends span at least 1 + guard - late_tolerance >= 1 second: no 1-second
    window ever holds more than `rate` of them (for a whole-number rate; a fractional rate r
    bounds a window to floor(r) + 1). This assumes the workers' clocks agree (one host, or
    NTP): skew between hosts adds to lateness unseen. It reads the real clock because it paces
    real network calls, not the simulated `now` of a tick.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        guard: float = RATE_GUARD,
        late_tolerance: float = LATE_TOLERANCE,
        just_in_time: bool = False,
        priority: Priority | None = None,
    ) -> None:
        if not 0 <= late_tolerance <= guard:
            raise ValueError("late_tolerance must be within the guard, or windows can overfill")
        self.sessions = sessions
        self.rate = rate_per_second
        self.interval = (1.0 + guard) / rate_per_second
        self.late_tolerance = late_tolerance
        self.clock = clock
        self.sleep = sleep
        # Slots this worker reserved and has not used yet (more than one only at >= 200/s).
        self._slots: deque[float] = deque()
        self.missed = 0
        # Routine senders: reserve each slot only RESERVE_LEAD_SECONDS before it is due, and
        # after the urgent lane's (see the module docstring).
        self.just_in_time = just_in_time
        self.priority = priority
        self._last_slot: float | None = None
        self._engine: Engine | None = None
        # PostgreSQL: the connection reservations are made on, held until close() (see
        # _reserve_in_one_statement).
        self._connection: Connection | None = None

    def batch_size(self) -> int:
        """Messages per claim: what this rate sends in CLAIM_WINDOW_SECONDS, 1 to BATCH."""
        return max(1, min(BATCH, int(self.rate * CLAIM_WINDOW_SECONDS)))

    def reserve_size(self) -> int:
        """Slots per reservation: one at ordinary rates, so that several workers' sends
        interleave (a worker whose sends take longer than 1/rate still gets every other
        slot); more at very high rates, where a transaction per send would be the bottleneck."""
        return max(1, min(RESERVE_MAX, int(self.rate * RESERVE_WINDOW_SECONDS)))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self.sessions() as session:
                self._engine = cast(Engine, session.get_bind())
        return self._engine

    def reserve(self, count: int = 1) -> float:
        """Reserve `count` slots; returns the first (epoch seconds); slot i is first + i*interval."""
        # Whole microseconds (the column's precision), rounded up: rounded to nearest, the gap
        # between this reservation's last slot and the next reservation's first could be
        # half a microsecond under `interval`.
        span = timedelta(microseconds=math.ceil(count * self.interval * 1_000_000))
        if self.engine.dialect.name == "postgresql":
            return self._reserve_in_one_statement(span)
        return self._reserve_under_lock(span)

    def _reserve_in_one_statement(self, span: timedelta) -> float:
        """PostgreSQL: one autocommitted upsert, so one round trip. At very high rates this
        runs every RESERVE_MAX sends, and a transaction of four round trips, each waiting on a
        server busy with the tick's own writes, was most of a large tick. The row lock the
        upsert takes orders concurrent workers exactly as FOR UPDATE did. The clock is read
        just before the statement, so a worker that waited for another's reservation gets a
        first slot up to that wait in the past: it is then used if within late_tolerance or
        dropped, so spacing and the rate still hold (they depend only on the slots, which never
        overlap, and on wait_for); only a slot may be lost. Autocommitted, the upsert holds the
        row lock only while it runs: never across the worker's sends."""
        clock = datetime.fromtimestamp(self.clock(), UTC)
        table = cast(Table, SendRateSlot.__table__)
        statement = (
            postgresql.insert(table)
            .values(id=1, next_at=clock + span)
            .on_conflict_do_update(
                index_elements=["id"],
                set_={"next_at": func.greatest(table.c.next_at, clock) + span},
            )
            .returning(table.c.next_at)
        )
        for attempt in (1, 2):
            if self._connection is None:
                # Held, not checked out per reservation: a checkout pings the server first,
                # a second round trip each time.
                self._connection = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            try:
                next_at: datetime = self._connection.execute(statement).scalar_one()
            except Exception as exc:
                self.close()  # a broken connection is not used again
                # Lost (an idle timeout, a server restart) where the checkout's ping would
                # have noticed: once more on a new connection. Safe even if the lost upsert
                # committed: its slots are only lost, never handed out twice.
                lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
                if attempt == 2 or not lost:
                    raise
            else:
                return (next_at - span).timestamp()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def __enter__(self) -> RateLimiter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Give back the connection reservations were made on (PostgreSQL). A later
        reservation opens a new one."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()

    def _reserve_under_lock(self, span: timedelta) -> float:
        """SQLite: BEGIN IMMEDIATE holds the only write lock while the row is read and moved."""
        with session_scope(self.sessions) as session:
            query = select(SendRateSlot.next_at).where(SendRateSlot.id == 1)
            next_at = session.execute(query).scalar_one_or_none()
            if next_at is None:
                session.execute(
                    sqlite.insert(SendRateSlot)
                    .values(id=1, next_at=datetime.fromtimestamp(self.clock(), UTC))
                    .on_conflict_do_nothing(index_elements=["id"])
                )
                next_at = session.execute(query).scalar_one()
            # The clock is read under the lock: read before, it could be older than a slot
            # another worker took meanwhile, and the slot handed out would start out late.
            first = max(next_at, datetime.fromtimestamp(self.clock(), UTC))
            session.execute(
                update(SendRateSlot)
                .where(SendRateSlot.id == 1)
                .values(next_at=first + span)
                .execution_options(synchronize_session=False)
            )
        return first.timestamp()

    def reserve_at(self) -> float:
        """When `next_slot` will next reserve or hand out a slot: a slot in hand, or (just in
        time) RESERVE_LEAD_SECONDS before the slot after the last one used, or now."""
        if self._slots:
            return self._slots[0]
        now = self.clock()
        if self.just_in_time and self._last_slot is not None:
            return max(now, self._last_slot + self.interval - RESERVE_LEAD_SECONDS)
        return now

    def next_slot(self, wanted: int = 1) -> float:
        """This worker's next slot, reserving up to `wanted` (capped by reserve_size) when it
        has none left. Just in time, the reservation waits until reserve_at(), and then for
        the urgent lane of this process (`priority`), whose slots come first."""
        if not self._slots:
            if self.just_in_time:
                while (wait := self.reserve_at() - self.clock()) > 0:
                    self.sleep(wait)
            if self.priority is not None:
                self.priority.wait_until_idle()
            count = max(1, min(self.reserve_size(), wanted))
            first = self.reserve(count)
            self._slots.extend(first + i * self.interval for i in range(count))
        self._last_slot = self._slots.popleft()
        return self._last_slot

    def wait_for(self, slot: float) -> bool:
        """Sleep until `slot`; True if a send may leave now, False if the slot was missed."""
        while (wait := slot - self.clock()) > 0:
            self.sleep(wait)
        if self.clock() - slot <= self.late_tolerance:
            return True
        self.missed += 1
        return False
