"""GET /healthz and /healthz/worker (DESIGN.md §2): the database, the worker's last pass and
the spool, in one body; always answered within 2 s.

The check runs on a small engine of its own whose connect, statement and lock waits give up
after PROBE_TIMEOUT_SECONDS (bot.db.make_probe_engine), in a helper thread the request waits
for at most ANSWER_WITHIN_SECONDS: a database that hangs (a held lock, a host that drops
packets) is answered 503 "unreachable" instead of holding the request past Twilio's or a load
balancer's patience. The dashboard's banner for a stale worker is here too.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask_login import current_user
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.db import make_probe_engine
from bot.services import spool
from bot.services.heartbeat import STALE_AFTER, WorkerState, worker_state

from .context import db, state, utcnow
from .ui import local_time

bp = Blueprint("health", __name__)

ANSWER_WITHIN_SECONDS = 1.8
PROBE_TIMEOUT_SECONDS = 1.5


@dataclass
class _Probe:
    engine: Engine
    pool: ThreadPoolExecutor
    pid: int


_probe_lock = threading.Lock()


def _probe() -> _Probe:
    """The app's probe engine and thread, made on first use in this process (a preloaded app
    forks into workers, and neither a pool's connections nor threads survive a fork)."""
    with _probe_lock:
        probe: _Probe | None = current_app.extensions.get("checkin_health")
        if probe is None or probe.pid != os.getpid():
            probe = _Probe(
                engine=make_probe_engine(state().config.database_url, PROBE_TIMEOUT_SECONDS),
                pool=ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthz"),
                pid=os.getpid(),
            )
            current_app.extensions["checkin_health"] = probe
        return probe


def _read_worker(engine: Engine, now: datetime) -> WorkerState:
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        return worker_state(session, now)


def spool_summary(spool_dir: Path) -> dict[str, Any]:
    """How many texts wait in the spool (bot.services.spool) and since when: its files, the
    oldest by modification time (when it was written: the text's arrival)."""
    oldest: float | None = None
    count = 0
    for path in spool.waiting(spool_dir):
        try:
            mtime = path.stat().st_mtime
        except OSError:  # replayed meanwhile
            continue
        count += 1
        oldest = mtime if oldest is None else min(oldest, mtime)
    return {
        "texts": count,
        "oldest": None if oldest is None else _iso(datetime.fromtimestamp(oldest, UTC)),
    }


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def health_body() -> tuple[dict[str, Any], WorkerState | None]:
    """The body both routes answer, and the worker's state (None: the database did not answer)."""
    probe = _probe()
    future: Future[WorkerState] = probe.pool.submit(_read_worker, probe.engine, utcnow())
    try:
        worker: WorkerState | None = future.result(timeout=ANSWER_WITHIN_SECONDS)
    except (SQLAlchemyError, FutureTimeout, OSError):
        worker = None
    spool = spool_summary(state().config.spool_dir)
    if worker is None:
        # Without the database the last pass cannot be read; a worker cannot pass without it
        # either, so it is reported stale rather than ok.
        return {
            "status": "error",
            "db": "unreachable",
            "worker": "stale",
            "worker_last_pass": None,
            "spool": spool,
        }, None
    return {
        "status": "ok",
        "db": "ok",
        "worker": worker.health,
        "worker_last_pass": _iso(worker.last_pass_at) if worker.last_pass_at else None,
        "spool": spool,
    }, worker


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    body, worker = health_body()
    return jsonify(body), 200 if worker is not None else 503


@bp.get("/healthz/worker")
def healthz_worker() -> tuple[Response, int]:
    """200 while the last worker pass is under 5 minutes old, otherwise 503."""
    body, worker = health_body()
    return jsonify(body), 200 if worker is not None and worker.health == "ok" else 503


def worker_banner() -> str | None:
    """The dashboard's warning for coordinators and admins while the worker is stale or never
    ran (coaches cannot start it, so they are not told); None when all is well."""
    if not (current_user.is_authenticated and current_user.role in ("coordinator", "admin")):
        return None
    try:
        worker = worker_state(db(), utcnow())
    except SQLAlchemyError:
        return None
    minutes = int(STALE_AFTER.total_seconds() // 60)
    if worker.health == "never":
        return (
            "The scheduler has never run: no check-ins, reminders or escalations go out until "
            "`checkin worker` is running."
        )
    if worker.health == "stale":
        assert worker.last_pass_at is not None
        return (
            f"The scheduler has not run for over {minutes} minutes (last pass "
            f"{local_time(worker.last_pass_at, state().config.program_timezone)}): nothing is "
            "sent or escalated until `checkin worker` runs again."
        )
    return None


bp.record_once(lambda setup: setup.app.jinja_env.globals.update(worker_banner=worker_banner))
