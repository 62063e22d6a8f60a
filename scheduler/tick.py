"""tick(now): one full pass: plan, send due, sweep. A pure function of the database and `now`
(plus the transport); each step is idempotent and safe to run twice at once."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import session_scope
from bot.services import spool
from bot.services.delivery import apply_early_callbacks
from bot.services.inbound_retry import process_stuck
from bot.transport.base import Transport

from .plan import PlanCounts, plan
from .rate import Priority, RateLimiter
from .send import SendCounts, send_due
from .sweep import sweep


@dataclass
class TickSummary:
    now: datetime
    plan: PlanCounts = field(default_factory=PlanCounts)
    send: SendCounts = field(default_factory=SendCounts)
    # SweepCounts as a dict (empty until the sweep has run).
    sweep: dict[str, Any] = field(default_factory=dict)
    # Status callbacks that came before their SID was recorded, applied now.
    early_statuses: int = 0
    # Texts their webhook stored but did not finish processing, processed now.
    inbound_retried: int = 0
    # Texts the webhook spooled while the database was down, stored and processed now.
    spool_replayed: int = 0
    stopped: bool = False

    def as_log(self) -> dict[str, Any]:
        return {
            "now": _iso(self.now),
            "plan": asdict(self.plan),
            "send": asdict(self.send),
            "sweep": self.sweep,
            "early_statuses": self.early_statuses,
            "inbound_retried": self.inbound_retried,
            "spool_replayed": self.spool_replayed,
            "stopped": self.stopped,
        }

    def line(self) -> str:
        p, s = self.plan, self.send
        text = (
            f"tick {_iso(self.now)}: planned {p.participants} participant(s), "
            f"{p.appointments} appointment(s) (+{p.created} contacts, {p.cancelled} cancelled, "
            f"{p.skipped} skipped); sent {s.sent}, queued {s.queued}, retried {s.retried}, "
            f"failed {s.failed}, unknown {s.unknown}, cancelled {s.cancelled}, "
            f"skipped {s.skipped}, deferred {s.deferred}"
        )
        if s.expectations:
            text += f"; {s.expectations} reply expectation(s) made as sent"
        if self.spool_replayed:
            text += f"; {self.spool_replayed} spooled text(s) replayed"
        if self.inbound_retried:
            text += f"; {self.inbound_retried} unfinished inbound text(s) processed"
        if self.early_statuses:
            text += f"; {self.early_statuses} early status callback(s) applied"
        if self.sweep:
            text += "; sweep " + ", ".join(f"{k} {v}" for k, v in self.sweep.items())
        if self.stopped:
            text += " (stopped early)"
        return text


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_sweep(sessions: sessionmaker[Session], now: datetime, config: Config) -> dict[str, Any]:
    with session_scope(sessions) as session:
        # The ladder's pages need the public URL and the program's zone.
        return asdict(sweep(session, now, config))


def tick(
    sessions: sessionmaker[Session],
    transport: Transport,
    config: Config,
    now: datetime,
    *,
    worker_id: str | None = None,
    rate_limited: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    max_messages: int | None = None,
    priority: Priority | None = None,
) -> TickSummary:
    """`priority`: the urgent lane of this process (scheduler/urgent.py), ahead of which the
    tick's sends reserve their rate slots; they reserve just in time either way, so an urgent
    lane in another worker finds the next slot free too."""
    summary = TickSummary(now=now)
    # First: what people texted while the database was down (its crisis flags and pages go
    # out in this tick).
    replayed = spool.replay(sessions, config.spool_dir, now=now, config=config)
    summary.spool_replayed = replayed.replayed + replayed.duplicates
    with session_scope(sessions) as session:
        summary.plan = plan(session, now)
    # Before sending, so that a late crisis reply and the pages it raises go out in this tick.
    summary.inbound_retried = process_stuck(sessions, now, config)
    if should_stop():
        summary.stopped = True
        return summary
    limiter = (
        RateLimiter(sessions, config.send_rate_per_second, just_in_time=True, priority=priority)
        if rate_limited
        else None
    )
    with limiter or nullcontext():
        summary.send = send_due(
            sessions,
            transport,
            config,
            now,
            worker_id=worker_id or default_worker_id(),
            limiter=limiter,
            should_stop=should_stop,
            max_messages=max_messages,
        )
    if should_stop():
        summary.stopped = True
        return summary
    # Before the sweep, so that a failure reported early is flagged by this tick.
    summary.early_statuses = apply_early_callbacks(sessions, now)
    summary.sweep = _run_sweep(sessions, now, config)
    return summary
