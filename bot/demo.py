"""`checkin demo`: a program people can try on their own machine, with nothing sent for real.

It never reads DATABASE_URL: it re-creates `instance/demo.sqlite3`, or uses the database
`--database-url` names as long as that holds no user or participant the demo did not create
(DESIGN.md, Precise rules; see `demo_database_refusal`). It seeds staff, about 40 participants at various days since release with appointments, past conversations (inbound and
outbound) and open flags, then runs the web app and the scheduler worker with the simulated
transport, whatever credentials are set. The phone simulator (/simulator) lets a visitor text
as any participant through the real inbound path.
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
import signal
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Connection, Engine, create_engine, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ConfigError, load_config, parse_database_url
from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.log import log_event
from bot.models import (
    Base,
    ConsentEvent,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
    ProgramSetting,
    User,
)
from bot.models.flags import severity_for
from bot.services import contacts as planned_contacts
from bot.services.flags import acknowledge_flag, add_event, raise_flag, resolve_flag
from bot.services.heartbeat import after_pass
from bot.services.importer import import_appointments, import_participants
from bot.services.outbox import status as outbox_status
from bot.services.seed import seed_defaults
from bot.services.settings import DEFAULT_SETTINGS
from bot.services.users import create_user
from bot.timeutil import local_datetime
from bot.transport.base import Transport
from bot.transport.simulated import SimulatedTransport
from scheduler.plan import plan
from scheduler.tick import TickSummary, default_worker_id, tick

log = logging.getLogger(__name__)

DEMO_DB = Path("instance") / "demo.sqlite3"
# The program_settings row that records what the demo seeded (see demo_database_refusal).
DEMO_MARKER_KEY = "demo_seed"
# The number people text in the demo (a fictional 555 number).
DEMO_PROGRAM_NUMBER = "+12025550100"
DEMO_USERS = (
    ("admin", "admin@demo.checkin.local", "Ada Admin", None),
    ("coordinator", "coordinator@demo.checkin.local", "Cora Coordinator", "+12025550190"),
    ("coach", "coach1@demo.checkin.local", "Marcus Lee", "+12025550191"),
    ("coach", "coach2@demo.checkin.local", "Rosa Diaz", "+12025550192"),
    ("coach", "coach3@demo.checkin.local", "Dee Carter", "+12025550193"),
)
COACHES = tuple(email for role, email, _name, _phone in DEMO_USERS if role == "coach")
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
ZONES = ("America/New_York", "America/Chicago", "America/Phoenix", "America/Los_Angeles")
APPOINTMENT_KINDS = ("supervision", "benefits", "medical", "housing", "court", "other")
PLACES = ("100 Main St", "Community Center, 2nd floor", "County Services, Room 4", None)
REPLIES = {
    "en": ("Doing ok", "Good thanks", "Busy day but fine", "Yes all good", "Thanks, hanging in"),
    "es": ("Bien, gracias", "Todo bien", "Aquí andamos", "Sí, bien", "Gracias, todo tranquilo"),
}
PARTICIPANT_COUNT = 40
WORKER_SECONDS = 20
OPT_OUT_AGO = timedelta(days=2, hours=3)


def _demo_password(role: str) -> str:
    return f"demo-{role}-password"


def _iso(day: date) -> str:
    return day.isoformat()


def participant_phone(i: int) -> str:
    return f"+1202555{i + 100:04d}"


class DemoRefused(Exception):
    """The database holds data the demo did not create; nothing was written to it."""


def demo_database_refusal(connection: Connection) -> str | None:
    """Why the demo must not seed this database, or None when it may.

    It may when the database is empty (no tables), or holds checkin's schema with no users and
    no participants, or holds only what an earlier demo seeded: that seed wrote, in the same
    transaction, a `program_settings` row (DEMO_MARKER_KEY) listing the ids of the users and
    participants it created, and every user and participant must be among them. Anything else
    (real staff, a participant someone added in the demo, another application's tables) is
    refused. Reads only."""
    tables = set(inspect(connection).get_table_names())
    if not tables:
        return None
    if "alembic_version" not in tables or not {"users", "participants"} <= tables:
        found = ", ".join(sorted(tables)[:5])
        return f"it holds tables that are not a checkin database ({found})"
    user_ids = set(connection.scalars(select(User.id)))
    participant_ids = set(connection.scalars(select(Participant.id)))
    if not user_ids and not participant_ids:
        return None
    marker = (
        connection.scalar(select(ProgramSetting.value).where(ProgramSetting.key == DEMO_MARKER_KEY))
        if "program_settings" in tables
        else None
    )
    seeded_users = set(marker.get("user_ids", [])) if isinstance(marker, dict) else set()
    seeded_people = set(marker.get("participant_ids", [])) if isinstance(marker, dict) else set()
    foreign_users = user_ids - seeded_users
    foreign_people = participant_ids - seeded_people
    if foreign_users or foreign_people:
        return (
            f"it holds {len(foreign_users)} user(s) and {len(foreign_people)} participant(s) "
            "that `checkin demo` did not create"
        )
    return None


def _read_only_engine(database_url: str) -> Engine:
    """An engine that cannot write: make_engine's SQLite set-up switches the journal to WAL
    and begins write transactions, and connecting would create a missing file."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return make_engine(database_url)
    path = Path(url.database or "")
    if not path.exists():
        return create_engine("sqlite://")  # nothing there yet: an empty database to inspect
    return create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True),
    )


def check_demo_database(database_url: str) -> None:
    """Raise DemoRefused when the demo must not touch this database (before any migration)."""
    engine = _read_only_engine(database_url)
    try:
        with engine.connect() as connection:
            reason = demo_database_refusal(connection)
    finally:
        engine.dispose()
    if reason is not None:
        raise DemoRefused(reason)


def seed_demo(database_url: str, now: datetime) -> list[tuple[str, str, str]]:
    """Create the schema and the demo program; return (role, email, password) per login.

    Raises DemoRefused, having written nothing, when the database holds users or participants
    the demo did not create. An earlier demo's data is emptied and seeded again, in one
    transaction with the check and the new marker."""
    check_demo_database(database_url)
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    logins = []
    try:
        with session_scope(make_session_factory(engine)) as session:
            reason = demo_database_refusal(session.connection())
            if reason is not None:  # something arrived between the check and the migration
                raise DemoRefused(reason)
            if session.get(ProgramSetting, DEMO_MARKER_KEY) is not None:
                _empty_every_table(session)  # an earlier demo's: every user and participant
            seed_defaults(session, now)
            for role, email, name, phone in DEMO_USERS:
                password = _demo_password(role)
                create_user(
                    session,
                    email=email,
                    role=role,
                    password=password,
                    now=now,
                    name=name,
                    phone=phone,
                )
                logins.append((role, email, password))
            _seed_participants(session, now)
            _seed_appointments(session, now)
            _seed_history(session, now)
            _plan_around_history(session, now)
            session.flush()
            session.add(
                ProgramSetting(
                    key=DEMO_MARKER_KEY,
                    value={
                        "seeded_at": now.isoformat(),
                        "user_ids": sorted(session.scalars(select(User.id))),
                        "participant_ids": sorted(session.scalars(select(Participant.id))),
                    },
                    updated_at=now,
                )
            )
    finally:
        engine.dispose()
    return logins


def _empty_every_table(session: Session) -> None:
    """Delete an earlier demo's rows (the caller checked that there is nothing else)."""
    for table in reversed(Base.metadata.sorted_tables):
        session.execute(table.delete())


def _seed_participants(session: Session, now: datetime) -> None:
    rows = [
        "external_id,first_name,phone,release_date,timezone,language,coach_email,channel,"
        "consent_source,consent_date"
    ]
    today = now.date()
    for i in range(PARTICIPANT_COUNT):
        # Spread over 0..93 days since release, plus a few released in the next days.
        released = today - timedelta(days=(i * 7) % 94) + timedelta(days=2 if i % 13 == 0 else 0)
        language = "es" if i % 4 == 1 else "en"
        channel = "whatsapp" if i % 10 == 7 else "sms"
        rows.append(
            f"D-{i + 1:03d},{FIRST_NAMES[i % len(FIRST_NAMES)]},{participant_phone(i)},"
            f"{_iso(released)},{ZONES[i % 4]},{language},{COACHES[i % 3]},{channel},"
            # A few were enrolled without evidence: their consent is asserted by the import.
            + ("" if i % 9 == 4 else f"signed enrolment form,{_iso(released - timedelta(days=14))}")
        )
    import_participants(
        session,
        io.StringIO("\n".join(rows)),
        now=now,
        default_timezone="America/New_York",
        recorded_by="demo",
        filename="demo-participants.csv",
    )
    # The importer records "enrolled now"; in the demo people joined on their release date.
    enrolled_at: dict[int, datetime] = {}
    for participant in session.scalars(select(Participant)):
        enrolled = min(
            now, local_datetime(participant.release_date, time(9), ZoneInfo(participant.timezone))
        )
        participant.enrolled_at = enrolled
        participant.consent_at = enrolled
        enrolled_at[participant.id] = enrolled
        participant.created_at = enrolled
    for event in session.scalars(select(ConsentEvent)):
        event.at = min(event.at, enrolled_at[event.participant_id])


def _seed_appointments(session: Session, now: datetime) -> None:
    out = io.StringIO()
    rows = csv.writer(out)
    rows.writerow(["external_id", "kind", "starts_at", "location", "appointment_id"])
    for i in range(PARTICIPANT_COUNT):
        if i % 3 == 2:
            continue  # not everybody has an appointment coming up
        zone = ZoneInfo(ZONES[i % 4])
        day = now.astimezone(zone).date() + timedelta(days=1 + (i * 5) % 9)
        starts = datetime.combine(day, time(9 + i % 7, 30 if i % 2 else 0))
        place = PLACES[i % len(PLACES)] or ""
        kind = APPOINTMENT_KINDS[i % len(APPOINTMENT_KINDS)]
        rows.writerow([f"D-{i + 1:03d}", kind, starts.isoformat(), place, f"demo-appt-{i + 1}"])
    out.seek(0)
    import_appointments(session, out, now=now, recorded_by="demo")


@dataclass
class _History:
    session: Session
    now: datetime
    sequence: int = 0

    def sid(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}demo{self.sequence:030d}"

    def outbound(
        self, participant: Participant, purpose: str, body: str, at: datetime, status: str
    ) -> OutboundMessage:
        error = 30003 if status == "undelivered" else None
        return outbox_status.record_past(
            self.session,
            idempotency_key=f"demo:{participant.id}:{purpose}:{at.isoformat()}",
            participant_id=participant.id,
            purpose=purpose,
            channel=participant.channel,
            to_address=participant.address,
            body=body,
            segments=1,
            status=status,
            provider_sid=self.sid("SM"),
            error_code=error,
            error_message="Unreachable destination handset" if error else None,
            attempts=1,
            send_after=at,
            created_at=at,
            sent_at=at,
            status_updated_at=at + timedelta(seconds=5),
        )

    def inbound(
        self, participant: Participant, body: str, at: datetime, intent: str = "none"
    ) -> InboundMessage:
        message = InboundMessage(
            message_sid=self.sid("SM"),
            from_address=participant.address,
            to_address=(
                f"whatsapp:{DEMO_PROGRAM_NUMBER}"
                if participant.channel == "whatsapp"
                else DEMO_PROGRAM_NUMBER
            ),
            channel=participant.channel,
            body=body,
            num_media=0,
            raw_form={"Body": [body], "From": [participant.address]},
            participant_id=participant.id,
            received_at=at,
            processing_state="processed",
            intent=intent,
            processed_at=at,
        )
        self.session.add(message)
        return message


def _render(
    session: Session, participant: Participant, key: str, config: Config | None = None
) -> str:
    from bot.services.templates import participant_context, render_message

    config = config or Config(program_name="Homecoming Peers", program_phone="(202) 555-0100")
    return render_message(
        session, key, participant.language, participant_context(session, participant, config)
    )


def _checkin_key(n: int) -> str:
    from messages.defaults import checkin_variant_key

    return checkin_variant_key(n)


def _seed_history(session: Session, now: datetime) -> None:
    """Past conversations and the flags they led to, so every page has something to show."""
    history = _History(session, now)
    coaches = {u.email: u for u in session.scalars(select(User))}
    coordinator = coaches["coordinator@demo.checkin.local"]
    cadence = DEFAULT_SETTINGS["cadence"]
    days: list[int] = list(cadence["checkin_days"])
    days += list(range(days[-1] + 7, int(cadence["weekly_until_day"]) + 1, 7))
    participants = list(session.scalars(select(Participant).order_by(Participant.id)))
    for i, person in enumerate(participants):
        zone = ZoneInfo(person.timezone)
        released = person.release_date
        if released > now.astimezone(zone).date():
            continue  # not home yet: only their welcome is planned
        welcome_at = local_datetime(released, time(10), zone)
        if welcome_at < now:
            history.outbound(
                person, "welcome", _render(session, person, "welcome"), welcome_at, "delivered"
            )
        misses = 0
        last_miss: datetime | None = None
        # Nothing is sent after an opt-out (the seeded STOP of person 27, 2 days ago).
        history_until = now - (OPT_OUT_AGO if i == 27 else timedelta(hours=1))
        for n, day in enumerate(days, start=1):
            sent_at = local_datetime(released + timedelta(days=day), time(10), zone)
            if sent_at >= history_until:
                break
            status = "undelivered" if (i % 11 == 4 and n == 3) else "delivered"
            history.outbound(
                person, "checkin", _render(session, person, _checkin_key(n)), sent_at, status
            )
            # Most people answer most texts; a few go quiet for a while.
            replies = status == "delivered" and (i + n) % 5 != 0 and not (i % 9 == 3 and n > 4)
            if replies:
                delay = timedelta(minutes=5 + (i * 37 + n * 11) % 300)
                body = REPLIES[person.language][(i + n) % 5]
                history.inbound(person, body, sent_at + delay)
                misses = 0
            else:
                misses += 1
                last_miss = sent_at
        session.flush()
        # no_reply opens when the reply window after the last unanswered check-in has passed.
        overdue = last_miss is not None and now - last_miss > timedelta(hours=48)
        _seed_flags(session, history, person, i, misses if overdue else 0, coordinator)


def _plan_around_history(session: Session, now: datetime) -> None:
    """Run the real planner, then tie each seeded welcome and check-in to its planned contact
    and mark it sent, as the scheduler would have. Without this the first tick would send
    today's check-in (and a recent welcome) a second time, and `checkin plan` would call the
    contacts of the seeded history `skipped`."""
    plan(session, now)
    contacts = {
        (c.participant_id, c.kind, c.send_after): c
        for c in session.scalars(
            select(PlannedContact).where(
                PlannedContact.kind.in_(("welcome", "checkin")), PlannedContact.send_after <= now
            )
        )
    }
    seeded = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.purpose.in_(("welcome", "checkin")),
            OutboundMessage.planned_contact_id.is_(None),
        )
    )
    for message in seeded:
        assert message.participant_id is not None
        contact = contacts.get((message.participant_id, message.purpose, message.send_after))
        if contact is None:
            continue
        assert message.sent_at is not None
        planned_contacts.record_past_send(session, contact, message.sent_at)
        message.planned_contact_id = contact.id
    session.flush()


def _seed_flags(
    session: Session,
    history: _History,
    person: Participant,
    i: int,
    misses: int,
    coordinator: User,
) -> None:
    now = history.now
    coach_id = person.coach_id or coordinator.id
    if i == 5:
        # A crisis text an hour ago: the urgent flag tops the coach's queue.
        at = now - timedelta(hours=1)
        history.inbound(person, "I can't do this anymore, I want to end it", at, intent="crisis")
        history.outbound(
            person, "crisis_reply", _render(session, person, "crisis"), at, "delivered"
        )
        raise_flag(session, reason="crisis", now=at, participant_id=person.id)
    elif i == 18:
        # An earlier crisis that a coach acknowledged in 6 minutes and resolved.
        at = now - timedelta(days=9)
        history.inbound(person, "everything is too much tonight", at, intent="crisis")
        history.outbound(
            person, "crisis_reply", _render(session, person, "crisis"), at, "delivered"
        )
        flag = raise_flag(session, reason="crisis", now=at, participant_id=person.id).flag
        acknowledge_flag(session, flag, user_id=coach_id, now=at + timedelta(minutes=6))
        resolve_flag(
            session,
            flag,
            outcome="reached",
            note="Talked by phone; safe, seeing counselor.",
            now=at + timedelta(hours=2),
            user_id=coach_id,
        )
    elif i == 27:
        at = now - OPT_OUT_AGO
        history.inbound(person, "STOP", at, intent="stop")
        person.status = "opted_out"
        person.opted_out_at = at
        session.add(
            ConsentEvent(
                participant_id=person.id, kind="opt_out", at=at, method="sms", wording="STOP"
            )
        )
        raise_flag(session, reason="opted_out", now=at, participant_id=person.id)
    elif i % 11 == 4:
        flag = raise_flag(
            session,
            reason="delivery_failed",
            now=now - timedelta(days=3),
            participant_id=person.id,
        ).flag
        if i == 15:
            acknowledge_flag(
                session, flag, user_id=coach_id, now=now - timedelta(days=3) + timedelta(minutes=40)
            )
    if misses >= 1 and person.status == "active":
        outcome = raise_flag(
            session,
            reason="no_reply",
            severity=severity_for("no_reply", escalated=misses >= 2),
            now=now - timedelta(hours=20),
            participant_id=person.id,
        )
        outcome.flag.occurrences = misses
    if i in (2, 10):
        at = now - timedelta(days=5)
        flag = raise_flag(
            session,
            reason="appointment_declined",
            now=at,
            participant_id=person.id,
        ).flag
        history.inbound(person, "NO" if person.language == "en" else "No puedo ir", at, intent="no")
        resolve_flag(
            session,
            flag,
            outcome="rescheduled",
            note="Moved to next week.",
            now=at + timedelta(hours=5),
            user_id=coach_id,
        )
    if i == 3:
        # Someone not enrolled texts the program number.
        at = now - timedelta(hours=6)
        stranger = "+12025559876"
        session.add(
            InboundMessage(
                message_sid=history.sid("SM"),
                from_address=stranger,
                to_address=DEMO_PROGRAM_NUMBER,
                channel="sms",
                body="hi who is this?",
                num_media=0,
                raw_form={"Body": ["hi who is this?"]},
                received_at=at,
                processing_state="processed",
                intent="none",
                processed_at=at,
            )
        )
        flag = raise_flag(session, reason="unknown_sender", now=at, sender_address=stranger).flag
        add_event(session, flag, "note", now=at, detail={"text": "seeded by the demo"})
    session.flush()


# ---------------------------------------------------------------------------------------------
# Running it


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
