"""`checkin demo`: a program people can try on their own machine, with nothing sent for real.

It re-creates `instance/demo.sqlite3` (or uses DATABASE_URL when set), seeds staff and
participants, and runs the web app with the simulated transport whatever credentials are set.
"""

from __future__ import annotations

import io
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from bot.config import ConfigError, load_config
from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.services.importer import import_participants
from bot.services.seed import seed_defaults
from bot.services.users import create_user

DEMO_DB = Path("instance") / "demo.sqlite3"
DEMO_USERS = (
    ("admin", "admin@demo.checkin.local", "Ada Admin"),
    ("coordinator", "coordinator@demo.checkin.local", "Cora Coordinator"),
    ("coach", "coach1@demo.checkin.local", "Marcus Lee"),
    ("coach", "coach2@demo.checkin.local", "Rosa Diaz"),
    ("coach", "coach3@demo.checkin.local", "Dee Carter"),
)
FIRST_NAMES = (
    "Sam",
    "Maria",
    "Luis",
    "Jordan",
    "Ana",
    "Terrell",
    "Keisha",
    "Jose",
    "Chris",
    "Rita",
)


def _demo_password(role: str) -> str:
    return f"demo-{role}-password"


def seed_demo(database_url: str, now: datetime) -> list[tuple[str, str, str]]:
    """Create the schema and the demo program; return (role, email, password) per login."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    logins = []
    with session_scope(make_session_factory(engine)) as session:
        seed_defaults(session, now)
        for role, email, name in DEMO_USERS:
            password = _demo_password(role)
            create_user(session, email=email, role=role, password=password, now=now, name=name)
            logins.append((role, email, password))
        rows = ["external_id,first_name,phone,release_date,timezone,language,coach_email,channel"]
        today = now.date()
        for i in range(40):
            coach = DEMO_USERS[2 + i % 3][1]
            released = (
                today - timedelta(days=(i * 3) % 95) + timedelta(days=2 if i % 13 == 0 else 0)
            )
            zone = (
                "America/New_York",
                "America/Chicago",
                "America/Phoenix",
                "America/Los_Angeles",
            )[i % 4]
            language = "es" if i % 4 == 1 else "en"
            channel = "whatsapp" if i % 10 == 7 else "sms"
            rows.append(
                f"D-{i + 1:03d},{FIRST_NAMES[i % len(FIRST_NAMES)]},+1202555{i + 100:04d},"
                f"{_iso(released)},{zone},{language},{coach},{channel}"
            )
        import_participants(
            session,
            io.StringIO("\n".join(rows)),
            now=now,
            default_timezone="America/New_York",
            recorded_by="demo",
        )
    engine.dispose()
    return logins


def _iso(day: date) -> str:
    return day.isoformat()


def run_demo(host: str, port: int) -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    fresh_sqlite = not config.database_url_explicit
    database_url = config.database_url if not fresh_sqlite else f"sqlite:///{DEMO_DB}"
    if fresh_sqlite:
        DEMO_DB.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DEMO_DB}{suffix}").unlink(missing_ok=True)
    config = config.with_overrides(
        database_url=database_url,
        demo=True,
        secret_key=config.secret_key or secrets.token_hex(32),
        public_base_url=f"http://{host}:{port}",
    )
    logins = seed_demo(database_url, datetime.now(UTC))
    from bot import create_app

    app = create_app(config)
    click.echo(f"Dashboard: http://{host}:{port}/")
    for role, email, password in logins:
        click.echo(f"{role} {email} {password}")
    click.echo("Simulated transport: nothing is sent for real. Stop with Ctrl-C.")
    app.run(host=host, port=port, threaded=True)
    return 0
