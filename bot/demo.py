"""`checkin demo`: a program people can try on their own machine, with nothing sent for real.

It never reads DATABASE_URL: it re-creates `instance/demo.sqlite3`, or uses the database
`--database-url` names as long as that holds no user or participant the demo did not create
(DESIGN.md, Precise rules; bot/demo_seed.py's `demo_database_refusal`). It seeds a program
(bot/demo_seed.py: staff, about 40 participants, their conversations and flags), then runs the
web app and the scheduler worker with the simulated transport, whatever credentials are set. The phone simulator (/simulator) lets a visitor text
as any participant through the real inbound path.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ConfigError, load_config, parse_database_url
from bot.demo_seed import DEMO_PROGRAM_NUMBER, DemoRefused, seed_demo
from bot.log import log_event
from bot.services.heartbeat import after_pass
from bot.transport.base import Transport
from bot.transport.simulated import SimulatedTransport
from scheduler.tick import TickSummary, default_worker_id, tick

log = logging.getLogger(__name__)

DEMO_DB = Path("instance") / "demo.sqlite3"
WORKER_SECONDS = 20


def simulated_tick(
    sessions: sessionmaker[Session],
    transport: Transport,
    config: Config,
    now: datetime,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> TickSummary:
    """One real scheduler pass (plan, send due, sweep) through the demo's transport.

    Not rate-limited: the limiter paces calls to Twilio's API and, in the demo, every send goes
    to the in-memory simulated transport, so pacing would only make the phone simulator's
    "Run the scheduler now" button slow."""
    return tick(
        sessions,
        transport,
        config,
        now,
        worker_id=f"demo:{default_worker_id()}",
        rate_limited=False,
        should_stop=should_stop,
    )


class DemoWorker:
    """`checkin worker` inside the demo process: the same `tick(now)` every `interval` seconds
    on a background thread, with the web app's sessions and SimulatedTransport, so what the
    schedule sends shows up on the phone simulator page.

    A thread rather than `run_worker`: that one installs signal handlers and builds its own
    transport from the environment (which would be Twilio when credentials are set).
    `stop()` sets the flag the tick checks between steps and waits for the pass in progress."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transport: Transport,
        config: Config,
        *,
        interval_seconds: float = WORKER_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.transport = transport
        self.config = config
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.ticks = 0
        self.last: TickSummary | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="checkin-demo-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _heartbeat(self) -> None:
        try:
            after_pass(
                self.sessions,
                self.config,
                at=self.clock(),
                worker_id=f"demo:{default_worker_id()}",
            )
        except Exception as exc:
            log_event(log, "demo.heartbeat_failed", logging.ERROR, error=type(exc).__name__)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                summary = simulated_tick(
                    self.sessions,
                    self.transport,
                    self.config,
                    self.clock(),
                    should_stop=self._stop.is_set,
                )
            except Exception as exc:  # the demo keeps serving if one pass fails
                log.exception("demo tick failed")
                log_event(log, "demo.tick_failed", logging.ERROR, error=type(exc).__name__)
            else:
                self.ticks += 1
                self.last = summary
                log_event(log, "demo.tick", **summary.as_log())
                self._heartbeat()
            self._stop.wait(self.interval_seconds)


def demo_database_url(option: str | None) -> str:
    """The demo's database: `--database-url` when given, else its own file. Never
    DATABASE_URL (DESIGN.md, Precise rules): a demo must not touch a real program's data."""
    if option is not None:
        return parse_database_url(option, "--database-url")
    return f"sqlite:///{DEMO_DB}"


class DemoError(Exception):
    """The demo cannot start; the message says why (and nothing was written)."""


def prepare_demo(
    host: str, port: int, database_url: str | None, now: datetime
) -> tuple[Config, list[tuple[str, str, str]]]:
    """The demo's configuration and its seeded database; raise DemoError when it cannot."""
    try:
        # The demo reads neither DATABASE_URL (a real program's data) nor WORKER_PING_URL (a
        # real worker's dead-man's switch, which a demo's passes would keep quiet).
        config = load_config(ignore=("DATABASE_URL", "WORKER_PING_URL"))
        url = demo_database_url(database_url)
    except ConfigError as exc:
        raise DemoError(str(exc)) from None
    if database_url is None:
        DEMO_DB.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DEMO_DB}{suffix}").unlink(missing_ok=True)
    config = config.with_overrides(
        database_url=url,
        database_url_explicit=True,
        demo=True,
        secret_key=secrets.token_hex(32),  # its own, whatever SECRET_KEY says
        public_base_url=f"http://{host}:{port}",
        # The demo never calls Twilio, whatever credentials are set (DESIGN.md, Precise rules):
        # demo=True turns `twilio_enabled` off and the transport below is built here, not from
        # the environment. The auth token is kept only to sign the simulator's inbound requests.
        twilio_auth_token=config.twilio_auth_token or secrets.token_hex(16),
        twilio_from_number=config.twilio_from_number or DEMO_PROGRAM_NUMBER,
        program_name=config.program_name
        if config.program_name != "Checkin"
        else "Homecoming Peers",
        program_phone=config.program_phone or "(202) 555-0100",
    )
    safe_url = make_url(url).render_as_string(hide_password=True)
    try:
        logins = seed_demo(url, now)
    except DemoRefused as exc:
        raise DemoError(
            f"--database-url: refusing {safe_url}: {exc}. Nothing was written. Give the demo "
            f"an empty database, or leave out --database-url to use {DEMO_DB}."
        ) from None
    except OperationalError as exc:
        raise DemoError(f"--database-url: cannot use {safe_url}: {exc.orig or exc}") from None
    return config, logins


def run_demo(host: str, port: int, database_url: str | None = None) -> int:
    try:
        config, logins = prepare_demo(host, port, database_url, datetime.now(UTC))
    except DemoError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    from bot import create_app

    transport = SimulatedTransport()
    app = create_app(config, transport)
    app_state = app.extensions["checkin"]
    worker = DemoWorker(app_state.sessions, transport, config)
    click.echo(f"Dashboard: http://{host}:{port}/")
    for role, email, password in logins:
        click.echo(f"{role} {email} {password}")
    click.echo(
        f"Scheduler: the worker's tick runs every {WORKER_SECONDS} s in this process "
        "(plan, send due, sweep) with the simulated transport."
    )
    click.echo(f"Phone simulator: http://{host}:{port}/simulator (text as any participant)")
    click.echo("Simulated transport: nothing is sent for real. Stop with Ctrl-C.")
    # SIGTERM stops the demo as Ctrl-C does: the server unwinds and the worker finishes its step.
    signal.signal(signal.SIGTERM, _exit_quietly)
    worker.start()
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
    click.echo("Demo stopped.")
    return 0


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
