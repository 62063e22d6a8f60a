"""Shared fixtures: every database test runs on SQLite and, when TEST_DATABASE_URL is set, on
PostgreSQL too (a fresh database per test session, emptied between tests)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import make_engine, make_session_factory, upgrade_to_head
from bot.models import Base
from bot.transport.simulated import SimulatedTransport

PG_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
PG_SKIP_REASON = (
    "PostgreSQL not tested: TEST_DATABASE_URL is not set "
    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
)
FIXED_NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def pytest_report_header(config: pytest.Config) -> str:
    if PG_URL:
        return f"PostgreSQL: tested against {make_url(PG_URL).render_as_string(hide_password=True)}"
    return f"PostgreSQL: {PG_SKIP_REASON}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`postgres_only` tests drop their SQLite variant instead of skipping it noisily."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec else None
        if item.get_closest_marker("postgres_only") and backend == "sqlite":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (fast and isolated)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A private database for this test session on the TEST_DATABASE_URL server, migrated."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    server = make_url(PG_URL)
    name = f"checkin_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "checkin.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    url: str = request.getfixturevalue("pg_database_url")
    _truncate_all(url)
    yield url
    _truncate_all(url)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def now() -> datetime:
    return FIXED_NOW


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Config:
    return Config(
        database_url=database_url,
        database_url_explicit=True,
        secret_key="test-secret-key",
        public_base_url="https://checkin.example.org",
        program_name="Homecoming Peers",
        program_phone="+1 555 010 0100",
        program_timezone="America/New_York",
        spool_dir=tmp_path / "spool",
        testing=True,
    )


@pytest.fixture
def transport() -> SimulatedTransport:
    return SimulatedTransport()


@pytest.fixture
def app(config: Config, transport: SimulatedTransport) -> Flask:
    from bot import create_app

    return create_app(config, transport)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
