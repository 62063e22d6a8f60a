"""`checkin doctor` (issue 18.6): one line per check, each with what to fix when it fails.

Checks the configuration, that the database answers, that its schema is at this release's
head, the worker's last pass, and, with Twilio credentials, that the account answers and is
active and that the sending number's messaging webhook is PUBLIC_BASE_URL/twilio/inbound
(Twilio's IncomingPhoneNumbers resource, through the official SDK pointed at TWILIO_API_BASE).
A "warn" line is worth reading but does not fail; a "fail" line makes the command exit 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.config import Config, ConfigError
from bot.db import make_probe_engine
from bot.services.backup import current_revision, head_revision
from bot.services.heartbeat import STALE_AFTER, worker_state

Status = Literal["ok", "warn", "fail", "skip"]
DB_TIMEOUT_SECONDS = 5.0
INBOUND_PATH = "/twilio/inbound"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.upper():4} {self.name}: {self.message}"
        return f"{text} -> {self.fix}" if self.fix and self.status in ("fail", "warn") else text


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


def check_configuration(config: Config) -> list[Check]:
    checks: list[Check] = []
    try:
        config.require_secret_key()
        checks.append(Check("SECRET_KEY", "ok", "set, long enough"))
    except ConfigError as exc:
        checks.append(Check("SECRET_KEY", "fail", exc.problem, "set SECRET_KEY in .env"))
    url = config.public_base_url
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        checks.append(
            Check(
                "PUBLIC_BASE_URL",
                "warn",
                f"{url} is only reachable from this machine; Twilio cannot call it",
                "set PUBLIC_BASE_URL to the https address Caddy serves (deploy/Caddyfile)",
            )
        )
    elif not url.startswith("https://"):
        checks.append(
            Check(
                "PUBLIC_BASE_URL",
                "fail",
                f"{url} is not https: sign-in cookies and Twilio's requests would travel in clear",
                "serve the app behind Caddy (deploy/Caddyfile) and use its https:// address",
            )
        )
    else:
        checks.append(Check("PUBLIC_BASE_URL", "ok", url))
    if config.twilio_enabled:
        sender = config.twilio_from_number or config.twilio_messaging_service_sid
        checks.append(Check("Twilio settings", "ok", f"credentials set, sending as {sender}"))
    else:
        checks.append(
            Check(
                "Twilio settings",
                "warn",
                "no TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN: the simulated transport sends nothing",
                "set them in .env to send real texts",
            )
        )
    return checks


def check_database(config: Config, now: datetime) -> list[Check]:
    engine = make_probe_engine(config.database_url, DB_TIMEOUT_SECONDS)
    try:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                revision = current_revision(connection)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            return [
                Check(
                    "database",
                    "fail",
                    f"does not answer: {reason}",
                    "check DATABASE_URL and that the database server is running",
                ),
                Check("migrations", "skip", "database not reachable"),
                Check("worker", "skip", "database not reachable"),
            ]
        checks = [Check("database", "ok", f"{engine.url.get_backend_name()} answers")]
        head = head_revision(config.database_url)
        if revision is None:
            checks.append(Check("migrations", "fail", "no schema", "run `checkin init-db`"))
            checks.append(Check("worker", "skip", "no schema"))
            return checks
        if revision != head:
            checks.append(
                Check(
                    "migrations",
                    "fail",
                    f"schema at {revision}, this release needs {head}",
                    "run `checkin init-db` (it upgrades), then restart the web app and worker",
                )
            )
        else:
            checks.append(Check("migrations", "ok", f"at head ({head})"))
        with Session(engine) as session:
            try:
                state = worker_state(session, now)
            except SQLAlchemyError:
                checks.append(Check("worker", "skip", "the schema has no heartbeat yet"))
                return checks
        fix = (
            "start the worker: `systemctl start checkin-worker` "
            "(deploy/checkin-worker.service) or `checkin worker`"
        )
        if state.last_pass_at is None:
            checks.append(Check("worker", "fail", "has never finished a pass", fix))
        else:
            age = _age((now - state.last_pass_at).total_seconds())
            if state.health == "ok":
                checks.append(Check("worker", "ok", f"last pass {age} ago"))
            else:
                limit = _age(STALE_AFTER.total_seconds())
                checks.append(
                    Check("worker", "fail", f"last pass {age} ago (more than {limit})", fix)
                )
        return checks
    finally:
        engine.dispose()


def _twilio_reason(exc: Exception) -> str:
    from twilio.base.exceptions import TwilioRestException

    if isinstance(exc, TwilioRestException):
        code = f" {exc.code}" if exc.code else ""
        return f"Twilio answered {exc.status}{code}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def check_twilio(config: Config, client: Any = None) -> list[Check]:
    """`client`: a twilio Client (tests pass one whose HTTP layer is a fake); by default the
    transport's, with its HTTP layer pointed at TWILIO_API_BASE."""
    if not config.twilio_enabled:
        return [Check("Twilio", "skip", "no credentials")]
    if client is None:
        from bot.transport.twilio import TwilioTransport

        client = TwilioTransport.from_config(config).client
    checks: list[Check] = []
    sid = config.twilio_account_sid
    try:
        account = client.api.v2010.accounts(sid).fetch()
    except Exception as exc:  # the SDK raises for HTTP errors and requests for the network
        from twilio.base.exceptions import TwilioRestException

        auth = isinstance(exc, TwilioRestException) and exc.status in (401, 403)
        fix = (
            "copy the Account SID and Auth Token from the Twilio Console into .env"
            if auth
            else f"check TWILIO_API_BASE ({config.twilio_api_base}) and this server's network"
        )
        checks.append(
            Check("Twilio account", "fail", f"does not answer: {_twilio_reason(exc)}", fix)
        )
        checks.append(Check("Twilio webhook", "skip", "account not reachable"))
        return checks
    status = str(account.status or "unknown")
    if status != "active":
        checks.append(
            Check(
                "Twilio account",
                "fail",
                f"{account.friendly_name or sid} is {status}",
                "open the Twilio Console (billing, or the suspension notice) to reactivate it",
            )
        )
    else:
        checks.append(Check("Twilio account", "ok", f"{account.friendly_name or sid} is active"))
    checks.append(_check_webhook(config, client))
    return checks


def _check_webhook(config: Config, client: Any) -> Check:
    expected = config.public_base_url + INBOUND_PATH
    number = config.twilio_from_number
    if number is None:
        return Check(
            "Twilio webhook",
            "warn",
            "sending through Messaging Service "
            f"{config.twilio_messaging_service_sid}: its incoming-message setting is not checked",
            f"in the Console, set the service's incoming messages to {expected} (HTTP POST)",
        )
    try:
        numbers = client.incoming_phone_numbers.list(phone_number=number, limit=20)
    except Exception as exc:
        return Check(
            "Twilio webhook", "fail", f"cannot list numbers: {_twilio_reason(exc)}", "see above"
        )
    mine = [n for n in numbers if n.phone_number == number]
    if not mine:
        return Check(
            "Twilio webhook",
            "fail",
            f"{number} is not a number of this account",
            "set TWILIO_FROM_NUMBER to a number the account owns (Console > Phone Numbers)",
        )
    found = mine[0]
    fix_url = (
        f"in the Console > Phone Numbers > {number} > Messaging, set 'A message comes in' to "
        f"Webhook {expected} (HTTP POST)"
    )
    if found.sms_application_sid:
        return Check(
            "Twilio webhook",
            "fail",
            f"{number} sends its texts to TwiML app {found.sms_application_sid}, not to checkin",
            fix_url,
        )
    if (found.sms_url or "").rstrip("/") != expected:
        return Check(
            "Twilio webhook",
            "fail",
            f"{number} sends incoming texts to {found.sms_url or 'nowhere'}, not {expected}",
            fix_url,
        )
    if (found.sms_method or "POST").upper() != "POST":
        return Check("Twilio webhook", "fail", f"{number} uses {found.sms_method}", fix_url)
    return Check("Twilio webhook", "ok", f"{number} -> {expected}")


def run_checks(config: Config, *, now: datetime, twilio_client: Any = None) -> list[Check]:
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_configuration(config),
        lambda: check_database(config, now),
        lambda: check_twilio(config, twilio_client),
    ]
    checks: list[Check] = []
    for step in steps:
        checks.extend(step())
    return checks
