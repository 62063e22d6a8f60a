"""The worker's heartbeat and its dead-man's switch (issue 17.5)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import WorkerHeartbeat
from bot.services.heartbeat import after_pass, ping, record_pass, worker_state


class PingServer:
    """A healthchecks-style endpoint on 127.0.0.1 that records the paths it was asked for."""

    def __init__(self, status: int = 200) -> None:
        self.paths: list[str] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                outer.got.set()
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/abc"

    @contextmanager
    def running(self) -> Iterator[PingServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


def test_no_pass_yet_is_never(session: Session, now: datetime) -> None:
    state = worker_state(session, now)
    assert (state.health, state.last_pass_at) == ("never", None)


def test_a_pass_under_five_minutes_ago_is_ok_and_older_is_stale(
    session: Session, now: datetime
) -> None:
    record_pass(session, now, "host:1")
    session.commit()
    assert worker_state(session, now + timedelta(minutes=4, seconds=59)).health == "ok"
    stale = worker_state(session, now + timedelta(minutes=5))
    assert (stale.health, stale.last_pass_at) == ("stale", now)


def test_the_heartbeat_is_one_row_that_only_moves_forward(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        record_pass(session, now, "host:1")
    with sessions.begin() as session:
        record_pass(session, now + timedelta(seconds=30), "host:2")
    with sessions.begin() as session:
        record_pass(session, now + timedelta(seconds=10), "host:3")  # a slower worker, late
    with sessions() as session:
        rows = session.query(WorkerHeartbeat).all()
        assert [(r.last_pass_at, r.worker_id) for r in rows] == [
            (now + timedelta(seconds=30), "host:2")
        ]


def test_after_a_pass_the_heartbeat_is_recorded_and_the_ping_url_fetched(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> None:
    with PingServer().running() as server:
        after_pass(
            sessions, config.with_overrides(worker_ping_url=server.url), at=now, worker_id="w"
        )
        assert server.paths == ["/ping/abc"]
    with sessions() as session:
        assert worker_state(session, now).last_pass_at == now


def test_a_failing_ping_is_logged_not_raised(
    sessions: sessionmaker[Session],
    config: Config,
    now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with PingServer(status=500).running() as server:
        answered_500 = server.url
        assert ping(answered_500) is False
    closed = answered_500  # the server is gone: connection refused
    with caplog.at_level(logging.WARNING, logger="bot.services.heartbeat"):
        after_pass(sessions, config.with_overrides(worker_ping_url=closed), at=now, worker_id="w")
    assert '"worker.ping_failed"' in caplog.text
    assert "/ping/abc" not in caplog.text  # the URL's secret path is not logged
    with sessions() as session:
        assert worker_state(session, now).health == "ok"  # the heartbeat is recorded anyway
