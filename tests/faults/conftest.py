"""The fault suite (issue 17.9) runs on a private PostgreSQL cluster of its own, started once
for the suite and removed at its end even when a test fails; each test gets a fresh database
copied from a migrated template. Skipped, with the reason, only when initdb is not installed
and CHECKIN_REQUIRE_FAULTS is not set (CI sets it: .ci/run)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import make_engine, make_session_factory, upgrade_to_head
from tests.faults.cluster import REQUIRE_ENV, PrivateCluster, find_bindir

TEMPLATE = "checkin_template"
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def cluster() -> Iterator[PrivateCluster]:
    bindir = find_bindir()
    if bindir is None:
        reason = "fault suite not run: PostgreSQL's initdb is not installed"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{reason} and {REQUIRE_ENV} is set")
        pytest.skip(reason)
    cluster = PrivateCluster(bindir)
    try:
        cluster.init()
        cluster.start()
        admin = make_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{TEMPLATE}"'))
        admin.dispose()
        upgrade_to_head(cluster.url(TEMPLATE))
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def fault_url(cluster: PrivateCluster) -> str:
    """A fresh, migrated database on the private cluster (started again if a test left it
    stopped)."""
    if not cluster.running:
        cluster.start()
    name = f"fault_{next(_numbers)}"
    admin = make_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
    admin.dispose()
    return cluster.url(name)


@pytest.fixture
def fault_engine(fault_url: str) -> Iterator[Engine]:
    engine = make_engine(fault_url)
    yield engine
    engine.dispose()


@pytest.fixture
def fault_sessions(fault_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(fault_engine)


@pytest.fixture
def fault_config(fault_url: str, tmp_path: Path) -> Config:
    return Config(
        database_url=fault_url,
        database_url_explicit=True,
        secret_key="test-secret-key-of-at-least-32-characters",
        public_base_url="https://checkin.example.org",
        program_name="Homecoming Peers",
        program_phone="+1 555 010 0100",
        program_timezone="America/New_York",
        spool_dir=tmp_path / "spool",
        testing=True,
    )
