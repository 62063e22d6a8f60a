"""The worker is watched (issue 17.5; DESIGN.md §2 /healthz and /healthz/worker).

Every scheduler pass that finishes (`checkin worker`'s, `checkin tick`'s, the demo's) moves the
one-row heartbeat forward to the wall-clock time it finished, then fetches WORKER_PING_URL when
one is set. `/healthz` reports the heartbeat; `/healthz/worker` answers 503 once it is older
than STALE_AFTER; coordinators and admins see a banner in the dashboard while it is.

A pass that fails records nothing and pings nothing, so a worker that runs but cannot work
(the database refuses it) shows as stale, as does one that is not running at all.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.error import URLError
from urllib.parse import urlsplit

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import session_scope
from bot.log import log_event
from bot.models import WorkerHeartbeat

log = logging.getLogger(__name__)

# A worker passes every 30 s; five minutes is ten missed passes, or one very long send.
STALE_AFTER = timedelta(minutes=5)
PING_TIMEOUT_SECONDS = 5.0

WorkerHealth = Literal["ok", "stale", "never"]


@dataclass(frozen=True)
class WorkerState:
    health: WorkerHealth
    last_pass_at: datetime | None


def record_pass(session: Session, at: datetime, worker_id: str) -> None:
    """Move the heartbeat to `at` (never backwards: two workers may finish out of order)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(WorkerHeartbeat).values(id=1, last_pass_at=at, worker_id=worker_id[:200])
    statement = statement.on_conflict_do_update(
        index_elements=[WorkerHeartbeat.id],
        set_={
            "last_pass_at": statement.excluded.last_pass_at,
            "worker_id": statement.excluded.worker_id,
        },
        where=WorkerHeartbeat.last_pass_at < statement.excluded.last_pass_at,
    )
    session.execute(statement)


def worker_state(session: Session, now: datetime) -> WorkerState:
    row = session.get(WorkerHeartbeat, 1)
    if row is None:
        return WorkerState("never", None)
    health: WorkerHealth = "ok" if now - row.last_pass_at < STALE_AFTER else "stale"
    return WorkerState(health, row.last_pass_at)


def ping(url: str, *, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
    """Fetch the dead-man's switch URL; errors are logged, never raised (a monitoring service
    that is down must not stop the schedule). The URL is a secret of sorts: only its host is
    logged."""
    host = urlsplit(url).hostname or "?"
    try:
        # The scheme is checked to be http(s) when the setting is read (bot.config).
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            status = int(response.status)
    except (URLError, OSError, ValueError) as exc:
        log_event(log, "worker.ping_failed", logging.WARNING, host=host, error=type(exc).__name__)
        return False
    if status >= 400:
        log_event(log, "worker.ping_failed", logging.WARNING, host=host, status=status)
        return False
    return True


def after_pass(
    sessions: sessionmaker[Session], config: Config, *, at: datetime, worker_id: str
) -> None:
    """What every finished pass does last: record the heartbeat, then ping."""
    with session_scope(sessions) as session:
        record_pass(session, at, worker_id)
    if config.worker_ping_url:
        ping(config.worker_ping_url)
