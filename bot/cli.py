"""The `checkin` command line (DESIGN.md §2). Every command exits non-zero with a clear
message on error; the clock is read here and passed down as `now`."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TextIO

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.config import Config, ConfigError, load_config
from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.log import configure_logging
from bot.timeutil import local_to_utc


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _config() -> Config:
    try:
        config = load_config()
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(config.log_level)
    return config


@contextmanager
def _session(config: Config) -> Iterator[Session]:
    engine = make_engine(config.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    except OperationalError as exc:
        _fail(
            f"database: {exc.orig or exc} (DATABASE_URL={_safe_url(config)}; did you run `checkin init-db`?)"
        )
    finally:
        engine.dispose()


def _safe_url(config: Config) -> str:
    from sqlalchemy.engine import make_url

    return make_url(config.database_url).render_as_string(hide_password=True)


def _now() -> datetime:
    return datetime.now(UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """checkin: check-ins and reminders by text for people coming home from jail or prison."""


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the schema (Alembic upgrade head) and seed default templates and rules."""
    config = _config()
    try:
        upgrade_to_head(config.database_url)
    except OperationalError as exc:
        _fail(f"DATABASE_URL: cannot reach {_safe_url(config)}: {exc.orig or exc}")
    from bot.services.seed import seed_defaults

    with _session(config) as session:
        added = seed_defaults(session, _now())
    click.echo(f"Database at {_safe_url(config)} is up to date; seeded {added}.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the web app (webhooks and dashboard). In production use gunicorn 'bot:create_app()'."""
    config = _config()
    try:
        config.require_secret_key()
    except ConfigError as exc:
        _fail(str(exc))
    from bot import create_app

    create_app(config).run(host=host, port=port)


@main.command()
def worker() -> None:
    """Run the scheduler loop until stopped (SIGTERM finishes the current step)."""
    from scheduler.worker import run_worker

    sys.exit(run_worker(_config()))


@main.command()
@click.option(
    "--now", "now_text", help="ISO-8601 instant; without an offset, PROGRAM_TIMEZONE local time."
)
def tick(now_text: str | None) -> None:
    """One full pass: plan, send due, sweep; prints a one-line summary."""
    from bot.services.heartbeat import after_pass
    from bot.transport.factory import make_transport
    from scheduler.tick import default_worker_id
    from scheduler.tick import tick as run_tick

    config = _config()
    if now_text is not None:
        try:
            now = parse_now(now_text, config)
        except ValueError:
            _fail(f"--now: {now_text!r} is not an ISO-8601 date-time")
    else:
        now = _now()
    engine = make_engine(config.database_url)
    sessions = make_session_factory(engine)
    worker_id = default_worker_id()
    try:
        summary = run_tick(sessions, make_transport(config), config, now, worker_id=worker_id)
        # The heartbeat is when the pass ran, not the instant `--now` runs it as of.
        after_pass(sessions, config, at=_now(), worker_id=worker_id)
    except OperationalError as exc:
        _fail(f"database: {exc.orig or exc} (did you run `checkin init-db`?)")
    finally:
        engine.dispose()
    click.echo(summary.line())


def parse_now(text: str, config: Config) -> datetime:
    """ISO-8601; without an offset it is PROGRAM_TIMEZONE local time (DESIGN.md)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        return local_to_utc(value, config.zone)
    return value.astimezone(UTC)


@main.command()
@click.argument("external_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plan(external_id: str, as_json: bool) -> None:
    """The participant's upcoming contacts, with local and UTC times."""
    from sqlalchemy import select

    from bot.models import Participant
    from scheduler.plan_view import current_plan

    config = _config()
    with _session(config) as session:
        participant = session.scalars(
            select(Participant).where(Participant.external_id == external_id)
        ).first()
        if participant is None:
            _fail(f"no participant with external id {external_id!r}")
        rows = current_plan(session, participant, _now())
        label, zone, status = participant.external_id, participant.timezone, participant.status
    if as_json:
        click.echo(json.dumps([r.as_json() for r in rows], indent=2))
        return
    click.echo(f"{label} ({zone}, {status}): {len(rows)} upcoming contact(s)")
    if not rows:
        return
    header = ("KIND", "RULE", "LOCAL", "UTC", "NOT AFTER (UTC)", "STATE")
    table = [
        (
            r.kind,
            r.rule,
            r.send_at_local.strftime("%Y-%m-%d %H:%M %Z"),
            r.send_at_utc.strftime("%Y-%m-%d %H:%M"),
            r.not_after_utc.strftime("%Y-%m-%d %H:%M"),
            r.state,
        )
        for r in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *table, strict=True)]
    for line in (header, *table):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--all", "include_all", is_flag=True, help="Include resolved flags.")
def flags(as_json: bool, include_all: bool) -> None:
    """Open flags, urgent first: participant, reason, severity, opened at, state, coach."""
    from bot.services.flags import list_flags

    config = _config()
    with _session(config) as session:
        rows = list_flags(session, include_resolved=include_all)
    if as_json:
        click.echo(json.dumps([row.as_json() for row in rows], indent=2))
        return
    if not rows:
        click.echo("No open flags." if not include_all else "No flags.")
        return
    header = ("ID", "PARTICIPANT", "PHONE", "REASON", "SEVERITY", "STATE", "OPENED (UTC)", "COACH")
    table = [
        (
            str(r.id),
            r.participant or "-",
            r.phone_masked,
            r.reason,
            r.severity,
            r.state,
            r.opened_at.strftime("%Y-%m-%d %H:%M"),
            r.coach or "-",
        )
        for r in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *table, strict=True)]
    for line in (header, *table):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _run_import(kind: str, file: Path) -> None:
    from bot.services.importer import ImportFailed, import_appointments, import_participants

    config = _config()
    try:
        stream: TextIO = file.open(encoding="utf-8", newline="")
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")
    total = max(sum(1 for _ in file.open(encoding="utf-8", errors="replace")) - 1, 0)
    actor = f"cli:{getpass.getuser()}"
    with stream, click.progressbar(length=total, label=f"Importing {kind}", file=sys.stderr) as bar:
        last = 0

        def progress(done: int) -> None:
            nonlocal last
            bar.update(done - last)
            last = done

        try:
            with _session(config) as session:
                if kind == "participants":
                    summary = import_participants(
                        session,
                        stream,
                        now=_now(),
                        default_timezone=config.program_timezone,
                        recorded_by=actor,
                        progress=progress,
                        filename=file.name,
                    )
                else:
                    summary = import_appointments(
                        session, stream, now=_now(), recorded_by=actor, progress=progress
                    )
        except ImportFailed as exc:
            click.echo("", err=True)
            for error in exc.errors:
                click.echo(str(error), err=True)
            _fail(f"{file}: {len(exc.errors)} problem(s); nothing was imported")
    click.echo(f"{file}: {kind}: {summary}")
    for warning in summary.warnings:
        click.echo(f"warning: {warning}")


@main.command("import-participants")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def import_participants_command(file: Path) -> None:
    """Import participants from CSV, all-or-nothing; re-importing an external_id updates it.

    Columns: external_id, first_name, phone, release_date (YYYY-MM-DD), timezone, language
    (en|es), coach_email, channel (sms|whatsapp), consent_source (how consent was given, e.g.
    "signed enrolment form"), consent_date (YYYY-MM-DD). A row without consent_source records
    consent as asserted by this import (file, who ran it, when).
    """
    _run_import("participants", file)


@main.command("import-appointments")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def import_appointments_command(file: Path) -> None:
    """Import appointments from CSV, all-or-nothing.

    Columns: external_id, kind (court|supervision|treatment|benefits|medical|housing|other),
    starts_at (local ISO date-time, or with an offset), location, appointment_id.
    """
    _run_import("appointments", file)


def _read_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line.strip():
            _fail("password: none given on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Password (again): ")
    if first != second:
        _fail("password: the two passwords do not match")
    return first


@main.command("create-user")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(["coach", "coordinator", "admin"]))
@click.option("--name", default=None, help="Full name shown in the dashboard.")
@click.option("--phone", default=None, help="Mobile number for escalation pages.")
def create_user_command(email: str, role: str, name: str | None, phone: str | None) -> None:
    """Create a staff user; the password is read from standard input or prompted for twice."""
    from bot.services.users import UserError, create_user

    config = _config()
    password = _read_password()
    try:
        with _session(config) as session:
            user = create_user(
                session,
                email=email,
                role=role,
                password=password,
                now=_now(),
                name=name,
                phone=phone,
            )
            summary = f"Created {user.role} {user.email}"
    except UserError as exc:
        _fail(str(exc))
    click.echo(summary)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--database-url",
    default=None,
    help="Seed this database instead of instance/demo.sqlite3 (refused if it holds users or "
    "participants the demo did not create). DATABASE_URL is never read.",
)
def demo(host: str, port: int, database_url: str | None) -> None:
    """Seed a demo program and run the web app and worker with the simulated transport."""
    from bot.demo import run_demo

    sys.exit(run_demo(host=host, port=port, database_url=database_url))


@main.command("reset-password")
@click.argument("email")
def reset_password_command(email: str) -> None:
    """Print a one-time link (valid 1 h) with which that user sets a new password."""
    from bot.services.passwords import PasswordError, issue_reset, reset_url
    from bot.services.users import find_user_by_email

    config = _config()
    now = _now()
    try:
        with _session(config) as session:
            user = find_user_by_email(session, email)
            if user is None:
                _fail(f"no user with email {email.strip().lower()!r}")
            issued = issue_reset(
                session, user, now=now, issued_by=None, actor=f"cli:{getpass.getuser()}"
            )
            token, expires_at, who = issued.token, issued.expires_at, user.email
    except PasswordError as exc:
        _fail(str(exc))
    local = expires_at.astimezone(config.zone).strftime("%Y-%m-%d %H:%M %Z")
    click.echo(f"Reset link for {who} (works once, until {local}):")
    click.echo(reset_url(config.public_base_url, token))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup(file: Path) -> None:
    """Dump the whole database to FILE (JSON lines; restore with `checkin restore FILE`)."""
    from bot.services.backup import BackupError, dump

    config = _config()
    engine = make_engine(config.database_url)
    partial = file.with_name(file.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            summary = dump(engine, out, now=_now())
            out.flush()
            os.fsync(out.fileno())
        partial.replace(file)
    except BackupError as exc:
        partial.unlink(missing_ok=True)
        _fail(str(exc))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        _fail(f"{file}: {exc.strerror}")
    except OperationalError as exc:
        partial.unlink(missing_ok=True)
        _fail(f"database: {exc.orig or exc} (DATABASE_URL={_safe_url(config)})")
    finally:
        engine.dispose()
    click.echo(
        f"{file}: {summary.rows} rows from {summary.tables} tables "
        f"(schema {summary.revision}) of {_safe_url(config)}"
    )


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Replace everything in a database that already holds users or participants.",
)
def restore(file: Path, force: bool) -> None:
    """Load FILE (made by `checkin backup`) into the database: all of it or nothing."""
    from bot.services.backup import BackupError
    from bot.services.backup import restore as run_restore

    config = _config()
    engine = make_engine(config.database_url)
    try:
        with file.open(encoding="utf-8") as source:
            summary = run_restore(engine, config.database_url, source, force=force)
    except BackupError as exc:
        _fail(f"{file}: {exc}; nothing was changed")
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")
    except OperationalError as exc:
        _fail(f"database: {exc.orig or exc} (DATABASE_URL={_safe_url(config)})")
    finally:
        engine.dispose()
    click.echo(
        f"Restored {summary.rows} rows into {summary.tables} tables of {_safe_url(config)}. "
        "Everyone signs in again."
    )


@main.command()
def doctor() -> None:
    """Check configuration, database, migrations, the worker and, with credentials, Twilio."""
    from bot.services.doctor import run_checks

    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"FAIL configuration: {exc}")
        sys.exit(1)
    checks = run_checks(config, now=_now())
    for check in checks:
        click.echo(check.line())
    failed = sum(1 for c in checks if c.status == "fail")
    click.echo(f"{failed} problem(s)" if failed else "All checks passed.")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
