"""/healthz and /healthz/worker (DESIGN.md §2; issue 17.5): the database, the worker's last
pass and the spool; 503 within 2 s when the database does not answer."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot import create_app
from bot.config import Config
from bot.db import make_probe_engine
from bot.services.heartbeat import record_pass
from bot.web.health import ANSWER_WITHIN_SECONDS, PROBE_TIMEOUT_SECONDS
from tests.factories import make_user
from tests.web.dashboard_helpers import login

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # a closed port


def _pass(sessions: sessionmaker[Session], ago: timedelta) -> datetime:
    at = datetime.now(UTC) - ago
    with sessions.begin() as session:
        record_pass(session, at, "host:1")
    return at


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_healthz_with_no_worker_pass_yet_says_never(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "db": "ok",
        "worker": "never",
        "worker_last_pass": None,
        "spool": {"texts": 0, "oldest": None},
    }
    assert client.get("/healthz/worker").status_code == 503


def test_a_recent_worker_pass_is_ok_on_both_routes(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    at = _pass(sessions, timedelta(minutes=1))
    for path in ("/healthz", "/healthz/worker"):
        response = client.get(path)
        assert response.status_code == 200
        body = response.get_json()
        assert (body["worker"], body["worker_last_pass"]) == ("ok", _iso(at))


def test_a_pass_over_five_minutes_old_is_stale_and_healthz_worker_503(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    at = _pass(sessions, timedelta(minutes=6))
    healthz = client.get("/healthz")
    assert healthz.status_code == 200  # the web app and database are fine
    assert healthz.get_json()["worker"] == "stale"
    worker = client.get("/healthz/worker")
    assert worker.status_code == 503
    assert worker.get_json() == {
        "status": "ok",
        "db": "ok",
        "worker": "stale",
        "worker_last_pass": _iso(at),
        "spool": {"texts": 0, "oldest": None},
    }


def test_the_spool_reports_its_files_and_the_oldest(config: Config, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "a.json").write_text("{}")
    (spool / "b.json").write_text("{}")
    (spool / ".tmp-partial").write_text("")
    os.utime(spool / "a.json", (1_772_000_000, 1_772_000_000))
    app = create_app(config.with_overrides(spool_dir=spool))
    body = app.test_client().get("/healthz").get_json()
    assert body["spool"] == {
        "texts": 2,
        "oldest": _iso(datetime.fromtimestamp(1_772_000_000, UTC)),
    }


def test_healthz_is_503_with_the_same_keys_when_the_database_is_unreachable() -> None:
    config = Config(database_url=UNREACHABLE, secret_key="x", testing=True)
    client = create_app(config).test_client()
    for path in ("/healthz", "/healthz/worker"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.get_json() == {
            "status": "error",
            "db": "unreachable",
            "worker": "stale",
            "worker_last_pass": None,
            "spool": {"texts": 0, "oldest": None},
        }


@pytest.mark.postgres_only
def test_the_probe_gives_up_within_two_seconds(database_url: str) -> None:
    """Connect, statement and lock waits are bounded on the probe's connections, and the
    request waits for the probe at most ANSWER_WITHIN_SECONDS."""
    assert ANSWER_WITHIN_SECONDS < 2 and PROBE_TIMEOUT_SECONDS < 2
    engine = make_probe_engine(database_url, PROBE_TIMEOUT_SECONDS)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "1500ms"
            assert conn.scalar(text("SHOW lock_timeout")) == "1500ms"
            driver = conn.connection.driver_connection
            assert driver is not None
            assert driver.info.get_parameters()["connect_timeout"] == "2"  # libpq's least
    finally:
        engine.dispose()


@pytest.mark.postgres_only
def test_healthz_answers_503_while_a_lock_holds_the_heartbeat(
    app: Flask, engine: Engine, database_url: str
) -> None:
    """A held table lock (issue 17: the webhook and /healthz hung past 15 s) makes /healthz
    answer 503, not wait."""
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("LOCK TABLE worker_heartbeat IN ACCESS EXCLUSIVE MODE"))
    try:
        response = app.test_client().get("/healthz")
        assert response.status_code == 503
        assert response.get_json()["db"] == "unreachable"
    finally:
        transaction.rollback()
        holder.close()
    assert app.test_client().get("/healthz").status_code == 200


def test_coordinators_and_admins_see_a_banner_while_the_worker_is_stale(
    app: Flask, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        for role in ("coordinator", "admin", "coach"):
            make_user(session, now, email=f"{role}@example.org", role=role)
    _pass(sessions, timedelta(minutes=10))
    for role in ("coordinator", "admin"):
        client = app.test_client()
        login(client, f"{role}@example.org")
        page = client.get("/participants").get_data(as_text=True)
        assert "worker-banner" in page and "has not run for over 5 minutes" in page
    coach = app.test_client()
    login(coach, "coach@example.org")
    assert "worker-banner" not in coach.get("/participants").get_data(as_text=True)


def test_the_banner_says_the_worker_never_ran_and_goes_once_it_passes(
    app: Flask, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        make_user(session, now, email="cora@example.org", role="coordinator")
    client = app.test_client()
    login(client, "cora@example.org")
    assert "The scheduler has never run" in client.get("/").get_data(as_text=True)
    _pass(sessions, timedelta(seconds=20))
    assert "worker-banner" not in client.get("/").get_data(as_text=True)


def test_healthz_needs_no_login_and_threads_do_not_pile_up(client: FlaskClient) -> None:
    before = threading.active_count()
    for _ in range(10):
        assert client.get("/healthz").status_code == 200
    assert threading.active_count() <= before + 2  # the probe's two threads at most
