"""The worker process: APScheduler as a timer around tick(now).

The database is the schedule; APScheduler only says "tick now". One in-memory job store, one
interval job, `coalesce=True` (after a pause, one tick, not a burst of missed ones),
`max_instances=1` (a long tick is never overlapped by the next), and an explicit
`misfire_grace_time` (a run more than that late is skipped; the next interval comes anyway, and
a tick catches up on everything due because it reads the database, not the timer).

Next to the ticks runs the urgent lane (scheduler/urgent.py, its own thread): pages, crisis
replies and staff replies leave within seconds, ahead of the tick's routine sends, which yield
their next rate slot to it (the shared `Priority`).

SIGTERM (and SIGINT) sets a stop flag: the tick in progress and the lane each finish the step
they are in (one message, one batch) and return; the scheduler shuts down, the lane's thread
is joined, and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.blocking import BlockingScheduler

from bot.config import Config
from bot.log import log_event
from bot.services.heartbeat import after_pass

from .rate import Priority
from .tick import default_worker_id, tick
from .urgent import UrgentLane

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 30
MISFIRE_GRACE_SECONDS = 60


def run_worker(config: Config, *, interval_seconds: float = INTERVAL_SECONDS) -> int:
    from bot.db import make_engine, make_session_factory
    from bot.transport.factory import make_transport

    engine = make_engine(config.database_url)
    sessions = make_session_factory(engine)
    transport = make_transport(config)
    worker_id = default_worker_id()
    stop = threading.Event()
    running = threading.Lock()
    priority = Priority()
    # Its own transport: an HTTP client is not shared between threads.
    lane = UrgentLane(
        sessions,
        make_transport(config),
        config,
        worker_id=f"{worker_id}:urgent",
        priority=priority,
    )

    def job() -> None:
        if stop.is_set():
            return
        with running:
            now = datetime.now(UTC)
            try:
                summary = tick(
                    sessions,
                    transport,
                    config,
                    now,
                    worker_id=worker_id,
                    should_stop=stop.is_set,
                    priority=priority,
                )
            except Exception as exc:
                # One bad tick must not kill the worker; the next interval tries again.
                log.exception("tick failed")
                log_event(log, "worker.tick_failed", logging.ERROR, error=type(exc).__name__)
                return
            log_event(log, "worker.tick", worker=worker_id, **summary.as_log())
            try:
                after_pass(sessions, config, at=datetime.now(UTC), worker_id=worker_id)
            except Exception as exc:
                log_event(log, "worker.heartbeat_failed", logging.ERROR, error=type(exc).__name__)

    scheduler = BlockingScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
        timezone=UTC,
    )
    scheduler.add_job(
        job, "interval", seconds=interval_seconds, id="tick", next_run_time=datetime.now(UTC)
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log_event(log, "worker.stopping", signal=signal.Signals(signum).name)
        stop.set()
        lane.request_stop()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log_event(
        log,
        "worker.started",
        worker=worker_id,
        interval_seconds=interval_seconds,
        transport=getattr(transport, "name", "?"),
        rate_per_second=config.send_rate_per_second,
    )
    lane.start()
    try:
        scheduler.start()
    finally:
        # Wait for the tick in progress and the lane to finish their current step (they see
        # the stop flag).
        lane.stop()
        with running:
            pass
        engine.dispose()
    log_event(log, "worker.stopped", worker=worker_id)
    return 0
