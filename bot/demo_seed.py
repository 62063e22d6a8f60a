"""The demo's data (`checkin demo`, bot/demo.py) and the guard that keeps it off a real
program's database: staff, about 40 participants at various days since release with
appointments, past conversations (inbound and outbound) handled as a coach would have handled
them, and open flags, so every page has something to show. Written through the real services
(importer, planner, flags, outbox), so the data obeys the same rules as a program's own."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, create_engine, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.config import Config
from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
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
from bot.services.importer import import_appointments, import_participants
from bot.services.outbox import status as outbox_status
from bot.services.seed import seed_defaults
from bot.services.settings import DEFAULT_SETTINGS
from bot.services.users import create_user
from bot.timeutil import local_datetime
from scheduler.plan import plan

log = logging.getLogger(__name__)

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
OPT_OUT_AGO = timedelta(days=2, hours=3)
# Seeded replies older than this were handled by a coach; newer ones wait in the inbox.
ANSWERED_BEFORE = timedelta(hours=30)
# What automation fully answers (bot.services.inbox): the seeded STOP and the NO that declined
# a reminded appointment; their flags are the coach's cue, not the inbox.
AUTOMATION_ANSWERS = ("stop", "start", "yes", "no")


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
        self,
        participant: Participant,
        body: str,
        at: datetime,
        intent: str = "none",
        *,
        answered: tuple[str, int | None, datetime] | None = None,
    ) -> InboundMessage:
        """A processed text; `answered` (kind, user, when) ends its wait as a coach would have
        (bot.services.inbox), so the queue shows what waits now, not months of history."""
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
        if answered is None and intent in AUTOMATION_ANSWERS:
            answered = ("automatic", None, at)
        if answered is not None:
            kind, user_id, when = answered
            message.needs_reply = False
            message.answer_kind = kind
            message.answered_by_user_id = user_id
            message.answered_at = when
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
                at = sent_at + delay
                # A coach read the older ones long ago ("no reply needed"); the last day's
                # wait in the queue, as they would on a real morning.
                seen = at + timedelta(hours=2)
                handled = (
                    ("no_reply_needed", person.coach_id or coordinator.id, seen)
                    if seen < now - ANSWERED_BEFORE
                    else None
                )
                history.inbound(person, body, at, answered=handled)
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
        history.inbound(
            person,
            "everything is too much tonight",
            at,
            intent="crisis",
            answered=("reply", coach_id, at + timedelta(minutes=6)),
        )
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
