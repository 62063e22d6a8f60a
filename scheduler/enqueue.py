"""Due planned contacts become outbox rows, each person's first one already claimed.

`enqueue_due` reads a batch of due planned contacts with their people's columns (PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so two ticks at once do not even read the same contacts), decides
each in Python (bot.services.sendability.decide, plus the contact's own checks: its
appointment still on, no later reminder for it due; then cancelled, skipped, deferred, or
rendered), inserts their outbox rows in one statement with `ON CONFLICT DO NOTHING` on the
unique idempotency key `contact:<planned_contact_id>` (bot.services.outbox.insert_batch), and
moves the contacts planned -> queued in one conditional UPDATE (bot.services.contacts).

Each person's first row is inserted already claimed by this worker (`sending`): the
transaction that inserts it has just made the claim-time checks (status, quiet hours,
`not_after`) on what it read, and commits before any network call, so a second pass over the
row (pending -> sending) would only cost a write and a read per text. Only rows the insert
really made (RETURNING) are sent; a person's further rows in the batch stay `pending` for the
claim (bot.services.outbox.claims), after the first one's outcome. A WhatsApp row is always
left `pending`, with its approved template's variables when its key and language are mapped:
the claim reads the person's 24-hour window and chooses free text, the template or
`needs_template` (bot.services.whatsapp_window).

PostgreSQL: while a batch is being sent, a helper thread already runs the next batch's enqueue
in a transaction it leaves open (`ReadAhead`); that transaction commits (claims) only once the
current batch is done, so there is still at most one claimed, unsent batch, and a crash or a
stop before then rolls it back (its contacts stay `planned`). An error outcome in the current
batch rolls it back first, so the next batch is decided after the error's consequences (a
21610 opts the person out). Its claim-time checks are up to one batch older when its texts
leave; the last look before each send is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import false, not_, select
from sqlalchemy.orm import Session, sessionmaker

from bot.bulk import in_ids
from bot.config import Config
from bot.db import is_postgresql
from bot.log import log_event
from bot.models import Appointment, Participant, PlannedContact, User
from bot.services import consent_evidence, numbers, sendability, whatsapp_window
from bot.services import contacts as planned_contacts
from bot.services.locations import location_policy, sensitive_words
from bot.services.outbox.claims import Claim, SendCounts, status_callback_url
from bot.services.outbox.enqueue import insert_batch
from bot.services.templates import message_context
from bot.transport.base import SendRequest
from messages.segments import count_segments

from .rate import BATCH

log = logging.getLogger(__name__)

LIVE_CONTACT_STATES = ("planned", "queued", "sent")


class Renderer:
    """Bodies for one tick. Each (key, language) template is read and compiled once; each
    distinct (key, language, context) is rendered and its segments counted once (a program's
    people share its name and phone, a coach's caseload shares the coach's name, and first
    names repeat)."""

    def __init__(self) -> None:
        self.compiled: dict[tuple[str, str], Callable[[dict[str, str]], str]] = {}
        self.bodies: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[str, int]] = {}
        self.coach_names: dict[int, str] = {}

    def load_coaches(self, session: Session, coach_ids: Iterable[int]) -> None:
        missing = set(coach_ids) - self.coach_names.keys()
        if missing:
            for coach in session.scalars(select(User).where(in_ids(session, User.id, missing))):
                self.coach_names[coach.id] = coach.first_name

    def render(
        self, session: Session, key: str, language: str, context: dict[str, str]
    ) -> tuple[str, int]:
        """(body, segments); raises what the template's render raises."""
        memo = (key, language, tuple(context.items()))
        done = self.bodies.get(memo)
        if done is None:
            body = self._compiled(session, key, language)(context)
            done = (body, max(count_segments(body).segments, 1))
            self.bodies[memo] = done
        return done

    def _compiled(
        self, session: Session, key: str, language: str
    ) -> Callable[[dict[str, str]], str]:
        render = self.compiled.get((key, language))
        if render is None:
            from bot.services.templates import current_body
            from messages.render import allowed_placeholders_for, compile_template

            try:
                render = compile_template(
                    current_body(session, key, language), allowed_placeholders_for(key)
                )
            except Exception as exc:
                error = exc

                def render(context: dict[str, str], error: Exception = error) -> str:
                    raise error

            self.compiled[(key, language)] = render
        return render


@dataclass
class Enqueued:
    """What one enqueue_due did."""

    counts: SendCounts = field(default_factory=SendCounts)
    # Due contacts read, each decided (queued, cancelled, skipped or deferred); 0: none due.
    looked: int = 0
    more: bool = False
    # Rows inserted already claimed (`claimed_by` given), to be sent now.
    claims: list[Claim] = field(default_factory=list)
    # Rows inserted `pending` (a person's second text in this batch): the claim's.
    pending: int = 0


class EnqueueStep(Protocol):
    """enqueue_due's signature: what send_due calls (a test may pass a wrapper)."""

    def __call__(
        self,
        session: Session,
        now: datetime,
        config: Config,
        limit: int = ...,
        renderer: Renderer | None = ...,
        *,
        claimed_by: str | None = ...,
        claimed_at: datetime | None = ...,
    ) -> Enqueued: ...


class DueContact(NamedTuple):
    """A due planned contact and what its text needs of its person (one row of due_contacts).
    A tuple, not SQLAlchemy's Row: the enqueue loop reads some twenty fields of each of a
    batch's 2,000 contacts, and a Row's attribute access costs ten times a tuple's."""

    id: int
    participant_id: int
    kind: str
    template_key: str
    appointment_id: int | None
    send_after: datetime
    not_after: datetime
    status: str
    timezone: str
    language: str
    first_name: str
    coach_id: int | None
    channel: str
    phone: str
    checkins_paused_until: datetime | None
    crisis_open: bool
    number_changed: bool
    # The program requires a consent source and this person has none (issue 19.3).
    evidence_missing: bool


def due_contacts(session: Session, now: datetime, limit: int) -> list[DueContact]:
    c, p = PlannedContact, Participant
    evidence_missing = (
        not_(consent_evidence.has_source(c.participant_id))
        if consent_evidence.evidence_required(session)
        else false()
    )
    query = (
        select(
            c.id,
            c.participant_id,
            c.kind,
            c.template_key,
            c.appointment_id,
            c.send_after,
            c.not_after,
            p.status,
            p.timezone,
            p.language,
            p.first_name,
            p.coach_id,
            p.channel,
            p.phone,
            p.checkins_paused_until,
            sendability.crisis_open(c.participant_id).label("crisis_open"),
            numbers.number_changed_open(c.participant_id).label("number_changed"),
            evidence_missing.label("evidence_missing"),
        )
        .join(p, p.id == c.participant_id)
        .where(c.state == "planned", c.send_after <= now)
        # Not also by id: contacts due at the same minute (a whole cohort's 10:00) would then
        # be sorted in full for every batch; the index of planned rows by send_after gives
        # this order.
        .order_by(c.send_after)
        .limit(limit)
    )
    if is_postgresql(session):
        query = query.with_for_update(of=PlannedContact, skip_locked=True)
    # On the session's connection: plain rows, without the ORM's per-row loading.
    return [DueContact._make(row) for row in session.connection().execute(query).all()]


def _appointments(
    session: Session, contacts: list[DueContact], now: datetime
) -> tuple[dict[int, Appointment], dict[int, datetime]]:
    """The contacts' appointments, and for each the latest send_after of its live reminders
    already due."""
    appointment_ids = {c.appointment_id for c in contacts if c.appointment_id is not None}
    appointments: dict[int, Appointment] = {}
    latest_due: dict[int, datetime] = {}
    if appointment_ids:
        appointments = {
            a.id: a
            for a in session.scalars(select(Appointment).where(Appointment.id.in_(appointment_ids)))
        }
        for appointment_id, send_after in session.execute(
            select(PlannedContact.appointment_id, PlannedContact.send_after).where(
                PlannedContact.appointment_id.in_(appointment_ids),
                PlannedContact.state.in_(LIVE_CONTACT_STATES),
                PlannedContact.send_after <= now,
            )
        ):
            assert appointment_id is not None
            if appointment_id not in latest_due or send_after > latest_due[appointment_id]:
                latest_due[appointment_id] = send_after
    return appointments, latest_due


def enqueue_due(
    session: Session,
    now: datetime,
    config: Config,
    limit: int = BATCH,
    renderer: Renderer | None = None,
    *,
    claimed_by: str | None = None,
    claimed_at: datetime | None = None,
) -> Enqueued:
    """Turn up to `limit` due planned contacts into outbox rows.

    With `claimed_by` (a worker id) each person's first row is inserted already claimed by
    that worker (`sending`, in the same transaction that checked the person's status, quiet
    hours and the deadline: the claim-time checks) and returned as a claim; any further row
    for the same person is `pending`, for the claim after this one's outcome. Without it,
    every row is `pending`.
    """
    done = Enqueued()
    contacts = due_contacts(session, now, limit)
    if not contacts:
        return done
    done.looked, done.more = len(contacts), len(contacts) >= limit
    counts = done.counts
    renderer = renderer if renderer is not None else Renderer()
    renderer.load_coaches(session, {c.coach_id for c in contacts if c.coach_id is not None})
    quiet = sendability.quiet_hours(session)
    appointments, latest_due = _appointments(session, contacts, now)
    include_location = bool(appointments and location_policy(session).include_in_reminders)
    decided: dict[tuple[str, str], list[int]] = {}  # (state, reason) -> contact ids
    deferred: list[dict[str, Any]] = []
    # (template, language, first name, coach) -> (body, segments), for contacts without an
    # appointment: the only other inputs of their context are the program's constants.
    plain_bodies: dict[tuple[str, str, str, int | None], tuple[str, int]] = {}
    zone_of: dict[str, ZoneInfo] = {}  # zone name -> zone
    claimed_people: set[int] = set()
    zones: dict[int, ZoneInfo] = {}  # contact id -> its person's zone
    rows: list[dict[str, Any]] = []
    templates = (
        whatsapp_window.mappings(session) if any(c.channel == "whatsapp" for c in contacts) else {}
    )
    for contact in contacts:
        appointment = None
        withdrawn = None
        if contact.appointment_id is not None:
            appointment = appointments.get(contact.appointment_id)
            if appointment is None or appointment.status not in ("scheduled", "confirmed"):
                withdrawn = sendability.APPOINTMENT_CANCELLED
            elif latest_due.get(contact.appointment_id, contact.send_after) > contact.send_after:
                # After downtime the 3-day and the 1-day reminder can both be due: only the
                # latest goes, as for an appointment imported late (Precise rules, Reminders).
                withdrawn = sendability.LATER_REMINDER_DUE
        zone = zone_of.get(contact.timezone)
        if zone is None:
            zone = zone_of[contact.timezone] = ZoneInfo(contact.timezone)
        # A quiet-hours verdict comes only when settings changed after planning: the planner
        # keeps slots out of quiet hours.
        verdict = sendability.decide(
            now,
            status=contact.status,
            purpose=contact.kind,
            not_after=contact.not_after,
            zone=zone,
            quiet=quiet,
            withdrawn=withdrawn,
            hold=sendability.hold_for(
                contact.kind,
                now=now,
                paused_until=contact.checkins_paused_until,
                crisis_open=contact.crisis_open,
                number_changed=contact.number_changed,
                evidence_missing=contact.evidence_missing,
            ),
        )
        if verdict is not sendability.SEND:
            counts.count(verdict)
            if verdict.action == "deferred":
                deferred.append({"id": contact.id, "send_after": verdict.send_after})
            else:
                decided.setdefault((verdict.action, verdict.reason), []).append(contact.id)
            continue
        if appointment is not None and include_location and sensitive_words(appointment.location):
            # The last line of defence (bot/services/locations.py): the text says the neutral
            # phrase. The appointment is named, never its place.
            log_event(log, "reminder.place_withheld", appointment_id=appointment.id)
        rendered = _render(
            session, config, renderer, plain_bodies, contact, appointment, include_location
        )
        if rendered is None:  # a broken template must not stop every other contact
            decided.setdefault(("skipped", "render_failed"), []).append(contact.id)
            counts.skipped += 1
            continue
        body, segments = rendered
        content_sid = content_variables = None
        mapping = templates.get((contact.template_key, contact.language))
        if contact.channel == "whatsapp" and mapping is not None:
            content_sid = mapping.content_sid
            content_variables = whatsapp_window.variables_for(
                mapping, _context(config, renderer, contact, appointment, include_location)
            )
        # WhatsApp: the claim decides free text or template, by the person's window.
        claim = (
            claimed_by is not None
            and contact.participant_id not in claimed_people
            and contact.channel != "whatsapp"
        )
        if claim:
            claimed_people.add(contact.participant_id)
        zones[contact.id] = zone
        rows.append(
            {
                "idempotency_key": f"contact:{contact.id}",
                "purpose": contact.kind,
                "channel": contact.channel,
                "to_address": (
                    f"whatsapp:{contact.phone}" if contact.channel == "whatsapp" else contact.phone
                ),
                "body": body,
                "segments": segments,
                "content_sid": content_sid,
                "content_variables": content_variables,
                "ignore_quiet_hours": False,
                "status": "sending" if claim else "pending",
                "attempts": 1 if claim else 0,
                # The lease counts from the claim itself, not from the tick's start.
                "claimed_at": (claimed_at or now) if claim else None,
                "claimed_by": claimed_by if claim else None,
                "send_after": now,
                "not_after": contact.not_after,
                "participant_id": contact.participant_id,
                "planned_contact_id": contact.id,
                "created_at": now,
            }
        )
    for (state, reason), ids in decided.items():
        planned_contacts.decide(session, ids, state, reason, now)
    planned_contacts.defer(session, deferred)
    if rows:
        _insert(session, config, rows, zones, done, now)
    return done


def _context(
    config: Config,
    renderer: Renderer,
    contact: DueContact,
    appointment: Appointment | None,
    include_location: bool = True,
) -> dict[str, str]:
    return message_context(
        config,
        language=contact.language,
        first_name=contact.first_name,
        coach_first_name=renderer.coach_names.get(contact.coach_id)
        if contact.coach_id is not None
        else None,
        timezone=contact.timezone,
        appointment=appointment,
        include_location=include_location,
    )


def _render(
    session: Session,
    config: Config,
    renderer: Renderer,
    plain_bodies: dict[tuple[str, str, str, int | None], tuple[str, int]],
    contact: DueContact,
    appointment: Appointment | None,
    include_location: bool = True,
) -> tuple[str, int] | None:
    """(body, segments) of a contact's text; None (logged) when its template fails."""
    plain = (
        (contact.template_key, contact.language, contact.first_name, contact.coach_id)
        if appointment is None
        else None
    )
    try:
        rendered = plain_bodies.get(plain) if plain is not None else None
        if rendered is None:
            rendered = renderer.render(
                session,
                contact.template_key,
                contact.language,
                _context(config, renderer, contact, appointment, include_location),
            )
            if plain is not None:
                plain_bodies[plain] = rendered
        return rendered
    except Exception as exc:
        log_event(
            log,
            "send.render_failed",
            logging.ERROR,
            contact=contact.id,
            template=contact.template_key,
            error=type(exc).__name__,
        )
        return None


def _insert(
    session: Session,
    config: Config,
    rows: list[dict[str, Any]],
    zones: dict[int, ZoneInfo],
    done: Enqueued,
    now: datetime,
) -> None:
    """Insert the rows, queue their contacts, and hand the claimed ones to `done`."""
    inserted = insert_batch(session, rows)
    done.counts.queued += len(inserted)
    planned_contacts.mark_queued(session, [r["planned_contact_id"] for r in rows], now)
    ours = {contact_id: (message_id, status) for message_id, contact_id, status in inserted}
    callback = status_callback_url(config.public_base_url)
    for row in rows:
        contact_id = row["planned_contact_id"]
        if contact_id not in ours:
            continue  # already there (an earlier insert): not ours to send
        message_id, status = ours[contact_id]
        if status != "sending":
            done.pending += 1
            continue
        done.claims.append(
            Claim(
                message_id=message_id,
                request=SendRequest(
                    to=row["to_address"],
                    body=row["body"],
                    channel=row["channel"],
                    idempotency_key=row["idempotency_key"],
                    status_callback=callback,
                ),
                attempts=1,
                planned_contact_id=contact_id,
                participant_id=row["participant_id"],
                purpose=row["purpose"],
                zone=zones[contact_id],
                not_after=row["not_after"],
                ignore_quiet_hours=False,
            )
        )


class ReadAhead:
    """PostgreSQL: the next batch of due contacts, read, decided, rendered and inserted by a
    helper thread while the current batch is sent, in a transaction left open. `take` commits
    it (the claim) once the current batch is done, so still at most one batch is ever claimed
    and not yet sent: a crash before `take` rolls it back (its contacts stay `planned`), and a
    stop discards it the same way. Its claim-time checks are then up to one batch older when
    its texts leave; the last look before each send (status, quiet hours, deadline) is made
    as always, after the commit."""

    def __init__(self, sessions: sessionmaker[Session], enqueue: EnqueueStep = enqueue_due) -> None:
        self.sessions = sessions
        self.enqueue = enqueue
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="send-enqueue")
        self._future: Future[tuple[Session, Enqueued]] | None = None

    def start(
        self,
        now: datetime,
        config: Config,
        limit: int,
        renderer: Renderer,
        worker_id: str,
        *,
        claimed_at: datetime,
    ) -> None:
        assert self._future is None

        def enqueue() -> tuple[Session, Enqueued]:
            session = self.sessions()
            try:
                step = self.enqueue(
                    session,
                    now,
                    config,
                    limit,
                    renderer,
                    claimed_by=worker_id,
                    claimed_at=claimed_at,
                )
            except BaseException:
                session.rollback()
                session.close()
                raise
            return session, step

        self._future = self._executor.submit(enqueue)

    def take(self) -> Enqueued | None:
        """The batch read ahead, now committed; None when none was started."""
        if self._future is None:
            return None
        future, self._future = self._future, None
        session, step = future.result()
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        return step

    def discard(self) -> None:
        """Roll back a batch read ahead and not taken (its contacts stay `planned`)."""
        if self._future is not None:
            future, self._future = self._future, None
            session, _ = future.result()
            try:
                session.rollback()
            finally:
                session.close()  # its connection back to the pool even if the rollback failed

    def close(self) -> None:
        """`discard`, and stop the helper thread."""
        try:
            self.discard()
        finally:
            self._executor.shutdown(wait=True)
