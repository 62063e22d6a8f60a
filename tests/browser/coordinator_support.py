"""Fixtures for the coordinator browser tests: Debian's Chromium driven by Playwright against
the real app served on a port in this helper's range (5800-5899).

Kept out of conftest.py so it composes with the dashboard's browser fixtures. Without Chromium
the tests are skipped with the reason, unless CHECKIN_REQUIRE_BROWSER=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from bot.config import Config
from bot.db import make_engine, make_session_factory
from bot.transport.simulated import SimulatedTransport

CHROMIUM = os.environ.get("CHECKIN_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("CHECKIN_ARTIFACTS", "test-artifacts"))
PORTS = range(5850, 5900)


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CHECKIN_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@dataclass
class LiveApp:
    url: str
    app: Flask
    sessions: sessionmaker[Session]
    transport: SimulatedTransport
    config: Config


@pytest.fixture
def live_app(
    tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> Iterator[LiveApp]:
    from bot import create_app

    path = tmp_path / "browser.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    port = free_port()
    overrides: dict[str, Any] = getattr(request, "param", {}) or {}
    config = Config(
        database_url=url,
        database_url_explicit=True,
        secret_key="browser-test-secret-" + "k" * 32,
        public_base_url=f"http://127.0.0.1:{port}",
        program_name="Homecoming Peers",
        program_phone="+1 555 010 0100",
        testing=False,
    ).with_overrides(**overrides)
    transport = SimulatedTransport()
    app = create_app(config, transport)
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    engine = make_engine(url)
    try:
        yield LiveApp(
            f"http://127.0.0.1:{port}", app, make_session_factory(engine), transport, config
        )
    finally:
        server.shutdown()
        thread.join(timeout=5)
        engine.dispose()
        app.extensions["checkin"].engine.dispose()


@pytest.fixture
def browser_page() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(10_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def sign_in(page: Any, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
