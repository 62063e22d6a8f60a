"""Configuration: the only place that reads the environment.

Every setting is parsed and checked here, at start-up, so that a wrong value fails at once with
the variable's name instead of surfacing later in a request or a tick. `.env` is read through
python-dotenv; real environment variables win over it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

DEFAULT_INSTANCE_DIR = Path("instance")
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_INSTANCE_DIR / 'checkin.sqlite3'}"
DEFAULT_SPOOL_DIR = DEFAULT_INSTANCE_DIR / "spool"
DEFAULT_TWILIO_API_BASE = "https://api.twilio.com"
SUPPORTED_DB_BACKENDS = ("sqlite", "postgresql")
# Flask signs session cookies with it: a short key can be guessed offline from one cookie.
MIN_SECRET_KEY_LENGTH = 32

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class ConfigError(ValueError):
    """A setting is missing or wrong. The message always starts with the variable's name."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    # Whether DATABASE_URL was given; `checkin demo` uses its own file otherwise.
    database_url_explicit: bool = False
    secret_key: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base: str = DEFAULT_TWILIO_API_BASE
    public_base_url: str = "http://localhost:5000"
    program_name: str = "Checkin"
    program_phone: str = ""
    program_timezone: str = "America/New_York"
    send_rate_per_second: float = 1.0
    log_level: str = "INFO"
    # Where the webhook keeps signed texts while the database is down (DESIGN.md §2).
    spool_dir: Path = DEFAULT_SPOOL_DIR
    # Fetched after each scheduler pass: a healthchecks-style dead-man's switch.
    worker_ping_url: str | None = None
    # Set by `checkin demo`: the simulated transport and the phone simulator, whatever else is set.
    demo: bool = False
    testing: bool = False

    @property
    def twilio_enabled(self) -> bool:
        """True when Twilio credentials are set and the demo is not running."""
        return bool(self.twilio_account_sid and self.twilio_auth_token) and not self.demo

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.program_timezone)

    def with_overrides(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    def require_secret_key(self) -> str:
        """Commands that serve requests call this; everything else may run without a key.

        The key must be at least MIN_SECRET_KEY_LENGTH characters (DESIGN.md, Precise rules);
        the demo makes its own and tests use theirs, so neither calls this."""
        if not self.secret_key:
            raise ConfigError("SECRET_KEY", f"is required to serve requests; {_KEY_ADVICE}")
        if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                "SECRET_KEY",
                f"is {len(self.secret_key)} characters long; it must be at least "
                f"{MIN_SECRET_KEY_LENGTH}: {_KEY_ADVICE}",
            )
        return self.secret_key


_KEY_ADVICE = 'set a long random value (python -c "import secrets; print(secrets.token_hex(32))")'


def load_config(
    env_file: str | Path | None = ".env",
    environ: Mapping[str, str] | None = None,
    *,
    ignore: Collection[str] = (),
) -> Config:
    """Read `.env` (when present) and the process environment, then parse and check.

    Variables named in `ignore` are not read from either (`checkin demo` ignores DATABASE_URL)."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    for name in ignore:
        values.pop(name, None)
    return parse_config(values)


def parse_config(env: Mapping[str, str]) -> Config:
    """Build a Config from a mapping of variables; raise ConfigError naming the first bad one."""

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    database_url = _parse_database_url(get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    sid, token = get("TWILIO_ACCOUNT_SID"), get("TWILIO_AUTH_TOKEN")
    _check_twilio_pair(sid, token)
    from_number = get("TWILIO_FROM_NUMBER")
    service_sid = get("TWILIO_MESSAGING_SERVICE_SID")
    if from_number is not None and not _E164.match(from_number):
        raise ConfigError(
            "TWILIO_FROM_NUMBER", f"{from_number!r} is not an E.164 number like +15551234567"
        )
    if service_sid is not None and not _MESSAGING_SERVICE_SID.match(service_sid):
        raise ConfigError("TWILIO_MESSAGING_SERVICE_SID", "must be MG followed by 32 hex digits")
    if sid and not (from_number or service_sid):
        raise ConfigError(
            "TWILIO_FROM_NUMBER",
            "set it or TWILIO_MESSAGING_SERVICE_SID when Twilio credentials are set",
        )
    return Config(
        database_url=database_url,
        database_url_explicit=get("DATABASE_URL") is not None,
        secret_key=get("SECRET_KEY"),
        twilio_account_sid=sid,
        twilio_auth_token=token,
        twilio_from_number=from_number,
        twilio_messaging_service_sid=service_sid,
        twilio_whatsapp_from=_parse_whatsapp_from(get("TWILIO_WHATSAPP_FROM")),
        twilio_api_base=_parse_http_url(
            "TWILIO_API_BASE", get("TWILIO_API_BASE") or DEFAULT_TWILIO_API_BASE
        ),
        public_base_url=_parse_http_url(
            "PUBLIC_BASE_URL", get("PUBLIC_BASE_URL") or "http://localhost:5000"
        ),
        program_name=get("PROGRAM_NAME") or "Checkin",
        program_phone=_parse_program_phone(get("PROGRAM_PHONE")),
        program_timezone=_parse_timezone(
            "PROGRAM_TIMEZONE", get("PROGRAM_TIMEZONE") or "America/New_York"
        ),
        send_rate_per_second=_parse_rate(get("SEND_RATE_PER_SECOND")),
        log_level=_parse_log_level(get("LOG_LEVEL")),
        spool_dir=_parse_spool_dir(get("SPOOL_DIR")),
        worker_ping_url=_parse_ping_url(get("WORKER_PING_URL")),
    )


def parse_database_url(value: str, name: str = "DATABASE_URL") -> str:
    """Check a database URL (`name` is what an error names: the variable or the option)."""
    return _parse_database_url(value, name)


def _parse_database_url(value: str, name: str = "DATABASE_URL") -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(name, f"{value!r} is not a database URL") from None
    if url.get_backend_name() not in SUPPORTED_DB_BACKENDS:
        raise ConfigError(
            name,
            f"backend {url.get_backend_name()!r} is not supported (use sqlite or postgresql)",
        )
    if url.get_backend_name() == "postgresql" and url.get_driver_name() not in (
        "psycopg",
        "psycopg2",
    ):
        raise ConfigError(name, "use the psycopg driver: postgresql+psycopg://...")
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        # Plain postgresql:// would pick psycopg2, which is not installed; psycopg 3 is.
        value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return value


def _check_twilio_pair(sid: str | None, token: str | None) -> None:
    if sid and not token:
        raise ConfigError("TWILIO_AUTH_TOKEN", "is missing while TWILIO_ACCOUNT_SID is set")
    if token and not sid:
        raise ConfigError("TWILIO_ACCOUNT_SID", "is missing while TWILIO_AUTH_TOKEN is set")
    if sid and not _ACCOUNT_SID.match(sid):
        raise ConfigError("TWILIO_ACCOUNT_SID", "must be AC followed by 32 hex digits")


def _parse_whatsapp_from(value: str | None) -> str | None:
    if value is None:
        return None
    number = value.removeprefix("whatsapp:")
    if not _E164.match(number):
        raise ConfigError("TWILIO_WHATSAPP_FROM", f"{value!r} is not +E.164 or whatsapp:+E.164")
    return f"whatsapp:{number}"


def _parse_http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(name, f"{value!r} is not an http(s) URL like https://checkin.example.org")
    return value.rstrip("/")


def _parse_program_phone(value: str | None) -> str:
    if value is None:
        return ""
    if not re.fullmatch(r"[0-9+()\-. ]{7,20}", value):
        raise ConfigError("PROGRAM_PHONE", f"{value!r} does not look like a phone number")
    return value


def _parse_timezone(name: str, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            name, f"{value!r} is not an IANA time zone like America/New_York"
        ) from None
    return value


def _parse_rate(value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        rate = float(value)
    except ValueError:
        raise ConfigError("SEND_RATE_PER_SECOND", f"{value!r} is not a number") from None
    if not 0 < rate <= 1000:
        raise ConfigError("SEND_RATE_PER_SECOND", "must be between 0 and 1000")
    return rate


def _parse_log_level(value: str | None) -> str:
    level = (value or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL", f"{value!r} is not one of DEBUG, INFO, WARNING, ERROR")
    return level


def _parse_spool_dir(value: str | None) -> Path:
    path = Path(value) if value is not None else DEFAULT_SPOOL_DIR
    if path.exists() and not path.is_dir():
        raise ConfigError("SPOOL_DIR", f"{value!r} exists and is not a directory")
    return path


def _parse_ping_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "WORKER_PING_URL", f"{value!r} is not an http(s) URL like https://hc-ping.com/<uuid>"
        )
    return value
