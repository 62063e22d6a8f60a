"""Browser fixtures: the real app served by werkzeug in a thread against a file SQLite database,
driven by Playwright in Debian's Chromium (launched by executable path, never downloaded).

Without Chromium these tests skip with the reason, unless CHECKIN_REQUIRE_BROWSER=1 (CI), which
turns the missing browser into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from bot.config import Config
from bot.db import make_engine, make_session_factory, upgrade_to_head
from bot.transport.simulated import SimulatedTransport

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
# The dashboard helper's port range, so parallel servers from other work never collide.
PORT_RANGE = range(5700, 5800)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TWILIO_TOKEN = "browser-test-auth-token"


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


def _free_port() -> int:
    for port in PORT_RANGE:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium()
    if path is None:
        reason = (
            "Chromium not found at /usr/bin/chromium (apt-get install chromium); "
            "browser tests need Debian's Chromium"
        )
        if os.environ.get("CHECKIN_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and CHECKIN_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class LiveServer:
    url: str
    app: Flask
    config: Config
    sessions: sessionmaker[Session]
    transport: SimulatedTransport


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    from bot import create_app

    database_url = f"sqlite:///{tmp_path / 'browser.sqlite3'}"
    upgrade_to_head(database_url)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = Config(
        database_url=database_url,
        database_url_explicit=True,
        secret_key="browser-test-secret",
        twilio_auth_token=TWILIO_TOKEN,
        public_base_url=url,
        program_name="Homecoming Peers",
        program_phone="+1 555 010 0100",
        program_timezone="America/New_York",
        testing=True,
    )
    transport = SimulatedTransport()
    app = create_app(config, transport)
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    engine = make_engine(database_url)
    try:
        yield LiveServer(url, app, config, make_session_factory(engine), transport)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
