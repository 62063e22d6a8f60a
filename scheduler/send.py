"""send_due(now): due planned contacts become outbox rows; outbox rows are claimed and sent.

Exactly once, by keys and claims, in batches (a tick may have tens of thousands of texts due):

1. `enqueue_due` reads a batch of due planned contacts with their people's columns (PostgreSQL:
   `FOR UPDATE SKIP LOCKED`, so two ticks at once do not even read the same contacts), decides
   each in Python (cancelled, skipped, deferred, or rendered), inserts their outbox rows in one
   statement with `ON CONFLICT DO NOTHING` on the unique idempotency key
   `contact:<planned_contact_id>`, and moves the contacts planned -> queued in one conditional
   UPDATE. Each person's first row is inserted already claimed by this worker (`sending`): the
   transaction that inserts it has just made the claim-time checks below (status, quiet hours,
   `not_after`) on what it read, and commits before any network call, so a second pass over
   the row (pending -> sending) would only cost a write and a read per text. Only rows the
   insert really made (RETURNING) are sent; a person's further rows in the batch stay
   `pending` for step 2. The batch is the claim batch's size (below). PostgreSQL: while a
   batch is being sent, a helper thread already runs the next batch's enqueue in a
   transaction it leaves open (`_NextBatch`); that transaction commits (claims) only once the
   current batch is done, so there is still at most one claimed, unsent batch, and a crash or
   a stop before then rolls it back (its contacts stay `planned`). An error outcome in the
   current batch rolls it back first, so the next batch is decided after the error's
   consequences (a 21610 opts the person out). Its claim-time checks are up to one batch
   older when its texts leave; the last look before each send is unchanged.
2. `claim_batch` reads due pending rows (retries, replies, pages, a person's second text;
   PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the transaction holds the write lock from
   BEGIN IMMEDIATE) and makes the checks that must hold
   *at send time* for each: the recipient is not opted out (never texted), paused or closed
   (only crisis replies go), the message is not in the recipient's quiet hours (unless
   `ignore_quiet_hours`), its `not_after` has not passed (then it is cancelled and its planned
   contact `skipped`). The rows that pass are claimed with one conditional UPDATE
   (`status = 'pending'` in the WHERE, RETURNING the ids actually claimed), committed *before*
   any network call. A batch holds at most one message per recipient, so a person's second
   text is judged after the first one's outcome (a 21610 on the first opts them out), and its
   size is what the configured rate sends in `CLAIM_WINDOW_SECONDS`, so a claim-time check is
   never more than about that old when the text leaves.
3. Outcomes are committed together, when the sender has a long wait for its next rate slot
   anyway (`FLUSH_GAP_SECONDS`) and at least every `FLUSH_SECONDS` (so a status callback
   rarely finds its SID unknown). PostgreSQL: a group of successes only is committed by a
   helper thread, in order, while the sender goes on (`_OutcomeWriter`); a group with an error
   is committed by the sender itself after the helper's, and a claim and the end of send_due
   wait for the helper. PostgreSQL: the commit that records check-ins as sent also makes
   their "reply by" expectations (`create_reply_expectations`, the sweep's own statement for
   just those texts), so the sweep after the sending has none left to make; its pass stays
   the safety net for any missed. Twilio has no idempotency key on message create, so a row
   left in `sending` (the process died between the claim and the outcome's commit) cannot be
   known to be unsent:
   `recover_stale` never resends it; once its claim is older than the lease (far longer than
   the 10 s HTTP timeout) it is marked `unknown` and flagged `delivery_unknown` (high). After a
   crash that is every row of the batch in flight, at most `CLAIM_WINDOW_SECONDS` of sending:
   a coach checking on a few people costs less trust than a duplicate text to someone who asked
   for fewer. A stop that is not a crash (SIGTERM, an error in our own code) releases the rows
   it never handed to the transport back to `pending`, since those are known to be unsent.
4. Retryable errors (429, 20429, 5xx, connection failures before the request left) go back to
   `pending` with exponential backoff (or the server's Retry-After); permanent errors are
   `failed` with the error code and never retried (21610 opts the participant out exactly as
   the status callback does, `bot.services.delivery.act_on_error_code`); a timeout after the
   request left is `unknown` and flagged.

Rate: senders reserve their slots from the single `send_rate_slots` row and never send more
than LATE_TOLERANCE after a slot (see RateLimiter), so no 1-second window holds more than the
configured messages per second, across any number of workers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Table, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.bulk import array_param, in_ids, insert_returning_ignoring_conflicts
from bot.config import Config
from bot.db import is_postgresql, session_scope
from bot.log import log_event, mask_phone
from bot.models import (
    Appointment,
    OutboundMessage,
    Participant,
    PlannedContact,
    SendRateSlot,
    User,
)
from bot.services.delivery import UNSUBSCRIBED_CODE, act_on_error_code
from bot.services.expectations import create_reply_expectations
from bot.services.flags import raise_flag
from bot.services.self_service import held_until
from bot.services.settings import get_setting
from bot.services.templates import message_context
from bot.timeutil import in_quiet_hours, next_quiet_end, parse_hhmm
from bot.transport.base import SendRequest, SendResult, Transport, TransportError
from messages.segments import count_segments

log = logging.getLogger(__name__)

# Most messages in one claim batch. Only a tick whose configured rate is not the limit (above
# BATCH / CLAIM_WINDOW_SECONDS = 4,000/s) reaches it; there each batch's fixed cost (three
# commits and a dozen statements, whatever its size) was a quarter of the tick at 500. A crash
# still leaves at most one batch `unknown`, at most CLAIM_WINDOW_SECONDS of sending.
BATCH = 2000
# Most rate slots in one reservation (see RateLimiter.reserve_size).
RESERVE_MAX = 500
# A claim reads this many candidates per message it may claim, to fill the batch while
# keeping one message per recipient.
CANDIDATE_FACTOR = 2
# A batch is what the configured rate sends in this long (at least one message).
CLAIM_WINDOW_SECONDS = 0.5
# A reservation covers at most this much sending time (see RateLimiter.reserve_size).
RESERVE_WINDOW_SECONDS = 0.01
# Outcomes are committed at least this often while a batch is being sent.
FLUSH_SECONDS = 0.1
# Commit waiting outcomes before sleeping for a slot at least this far away (low rates): far
# enough that the commit (a few ms, tens under load) ends before the slot, which would
# otherwise be missed. Closer slots (high rates) leave the outcomes to FLUSH_SECONDS.
FLUSH_GAP_SECONDS = 0.05
# "Never above the rate in any 1-second window", by construction (see RateLimiter): slots are
# spaced (1 + RATE_GUARD) / rate apart across all workers, so any `rate` + 1 of them span
# 1 + RATE_GUARD seconds, and a send leaves only if the clock, read just before the transport
# call, is at most LATE_TOLERANCE past its slot (a missed slot is dropped, never used late). Any
# `rate` + 1 sends then leave at least 1 + RATE_GUARD - LATE_TOLERANCE >= 1 s apart. Exactly
# 1/rate spacing with late sends allowed is what overfilled windows: a send that left 20+ ms late
# while the next worker's left on time put rate + 1 sends in the window starting at the late one.
# The mean rate is at most 1/(1 + RATE_GUARD) = 98 % of the setting. The RATE_GUARD -
# LATE_TOLERANCE left over (10 ms) absorbs the variation in the time a request takes from that
# clock read to the provider (SDK, socket), which the sender cannot see.
RATE_GUARD = 0.02
LATE_TOLERANCE = 0.01
# A claim older than this with no outcome belongs to a dead worker (the HTTP timeout is 10 s).
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
# Twilio's first statuses mean "accepted, not yet sent" -> our `queued`.
PROVIDER_STATUS = {
    "accepted": "queued",
    "queued": "queued",
    "scheduled": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
# Purposes that still go to a paused or closed participant (never to an opted-out one).
SENT_WHILE_PAUSED = ("crisis_reply",)
LIVE_CONTACT_STATES = ("planned", "queued", "sent")


@dataclass
class SendCounts:
    queued: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    cancelled: int = 0
    skipped: int = 0
    deferred: int = 0
    # "Reply by" expectations made as check-ins were recorded as sent (PostgreSQL; the
    # sweep's `created` counts only what this missed).
    expectations: int = 0

    def add(self, other: SendCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _quiet_window(session: Session) -> tuple[time_of_day, time_of_day]:
    value = get_setting(session, "quiet_hours")
    return parse_hhmm(value["start"]), parse_hhmm(value["end"])


def _outbox_table() -> Table:
    return cast(Table, OutboundMessage.__table__)


# --- 1. planned contact -> outbox row ----------------------------------------------------


def _decide_contacts(
    session: Session, contact_ids: Iterable[int], state: str, reason: str, now: datetime
) -> None:
    ids = list(contact_ids)
    if not ids:
        return
    session.execute(
        update(PlannedContact)
        .where(PlannedContact.id.in_(ids), PlannedContact.state.in_(("planned", "queued")))
        .values(state=state, state_reason=reason, decided_at=now)
        .execution_options(synchronize_session=False)
    )


def _decide_contact(
    session: Session, contact_id: int, state: str, reason: str, now: datetime
) -> None:
    _decide_contacts(session, [contact_id], state, reason, now)


class _Renderer:
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
class _Decisions:
    """Contacts or messages settled without a send, applied in a few statements."""

    by_reason: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    deferred: list[dict[str, Any]] = field(default_factory=list)

    def decide(self, state: str, reason: str, row_id: int) -> None:
        self.by_reason.setdefault((state, reason), []).append(row_id)


@dataclass
class Enqueued:
    counts: SendCounts = field(default_factory=SendCounts)
    # Due contacts read, each decided (queued, cancelled, skipped or deferred); 0: none due.
    looked: int = 0
    more: bool = False
    # Rows inserted already claimed (`claimed_by` given), to be sent now.
    claims: list[Claim] = field(default_factory=list)
    # Rows inserted `pending` (a person's second text in this batch): claim_batch's.
    pending: int = 0


class _DueContact(NamedTuple):
    """A due planned contact and what its text needs of its person (one row of _due_contacts).
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


def _due_contacts(session: Session, now: datetime, limit: int) -> list[_DueContact]:
    c, p = PlannedContact, Participant
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
    return [_DueContact._make(row) for row in session.connection().execute(query).all()]


def enqueue_due(
    session: Session,
    now: datetime,
    config: Config,
    limit: int = BATCH,
    renderer: _Renderer | None = None,
    *,
    claimed_by: str | None = None,
    claimed_at: datetime | None = None,
) -> Enqueued:
    """Turn up to `limit` due planned contacts into outbox rows.

    With `claimed_by` (a worker id) each person's first row is inserted already claimed by
    that worker (`sending`, in the same transaction that checked the person's status, quiet
    hours and the deadline: the claim-time checks) and returned as a claim; any further row
    for the same person is `pending`, for claim_batch after this one's outcome. Without it,
    every row is `pending`.
    """
    done = Enqueued()
    contacts = _due_contacts(session, now, limit)
    if not contacts:
        return done
    done.looked, done.more = len(contacts), len(contacts) >= limit
    counts = done.counts
    renderer = renderer if renderer is not None else _Renderer()
    renderer.load_coaches(session, {c.coach_id for c in contacts if c.coach_id is not None})
    start, end = _quiet_window(session)
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
    decisions = _Decisions()
    # (template, language, first name, coach) -> (body, segments), for contacts without an
    # appointment: the only other inputs of their context are the program's constants.
    plain_bodies: dict[tuple[str, str, str, int | None], tuple[str, int]] = {}
    quiet: dict[str, bool] = {}  # zone name -> in quiet hours now
    claimed_people: set[int] = set()
    zones: dict[int, str] = {}  # contact id -> its person's zone name
    rows: list[dict[str, Any]] = []
    for contact in contacts:
        if contact.status != "active":
            decisions.decide("cancelled", f"participant_{contact.status}", contact.id)
            counts.cancelled += 1
            continue
        held = held_until(contact.kind, contact.checkins_paused_until, now)
        if held is not None:
            # The person's own PAUSE: a welcome or check-in waits for its end, if its window
            # is still open then (bot/services/self_service.py; RESUME brings it forward).
            if held >= contact.not_after:
                decisions.decide("skipped", "checkins_paused", contact.id)
                counts.skipped += 1
            else:
                decisions.deferred.append({"id": contact.id, "send_after": held})
                counts.deferred += 1
            continue
        if contact.not_after <= now:
            # Downtime or a long quiet night: the window closed. Recorded, never sent late.
            decisions.decide("skipped", "window_closed", contact.id)
            counts.skipped += 1
            continue
        appointment = None
        if contact.appointment_id is not None:
            appointment = appointments.get(contact.appointment_id)
            if appointment is None or appointment.status not in ("scheduled", "confirmed"):
                decisions.decide("cancelled", "appointment_cancelled", contact.id)
                counts.cancelled += 1
                continue
            if latest_due.get(contact.appointment_id, contact.send_after) > contact.send_after:
                # After downtime the 3-day and the 1-day reminder can both be due: only the
                # latest goes, as for an appointment imported late (Precise rules, Reminders).
                decisions.decide("skipped", "later_reminder_due", contact.id)
                counts.skipped += 1
                continue
        if contact.timezone not in quiet:
            quiet[contact.timezone] = in_quiet_hours(now, ZoneInfo(contact.timezone), start, end)
        if quiet[contact.timezone]:
            # Only when settings changed after planning: the planner keeps slots out of quiet hours.
            morning = next_quiet_end(now, ZoneInfo(contact.timezone), start, end)
            if morning >= contact.not_after:
                decisions.decide("skipped", "window_closed", contact.id)
                counts.skipped += 1
            else:
                decisions.deferred.append({"id": contact.id, "send_after": morning})
                counts.deferred += 1
            continue
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
                    message_context(
                        config,
                        language=contact.language,
                        first_name=contact.first_name,
                        coach_first_name=renderer.coach_names.get(contact.coach_id)
                        if contact.coach_id is not None
                        else None,
                        timezone=contact.timezone,
                        appointment=appointment,
                    ),
                )
                if plain is not None:
                    plain_bodies[plain] = rendered
            body, segments = rendered
        except Exception as exc:  # a broken template must not stop every other contact
            log_event(
                log,
                "send.render_failed",
                logging.ERROR,
                contact=contact.id,
                template=contact.template_key,
                error=type(exc).__name__,
            )
            decisions.decide("skipped", "render_failed", contact.id)
            counts.skipped += 1
            continue
        claim = claimed_by is not None and contact.participant_id not in claimed_people
        if claim:
            claimed_people.add(contact.participant_id)
        zones[contact.id] = contact.timezone
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
    for (state, reason), ids in decisions.by_reason.items():
        _decide_contacts(session, ids, state, reason, now)
    if decisions.deferred:
        session.execute(update(PlannedContact), decisions.deferred)
    if rows:
        # The key makes a second tick's insert of the same contact a no-op (no target: the
        # unique planned_contact_id says the same thing); only rows really inserted are sent.
        inserted = insert_returning_ignoring_conflicts(
            session, _outbox_table(), rows, ("id", "planned_contact_id", "status")
        )
        counts.queued += len(inserted)
        session.execute(
            update(PlannedContact)
            .where(
                in_ids(session, PlannedContact.id, [r["planned_contact_id"] for r in rows]),
                PlannedContact.state == "planned",
            )
            .values(state="queued", decided_at=now)
            .execution_options(synchronize_session=False)
        )
        ours = {contact_id: (message_id, status) for message_id, contact_id, status in inserted}
        callback = f"{config.public_base_url}/twilio/status"
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
                    zone=ZoneInfo(zones[contact_id]),
                    not_after=row["not_after"],
                    ignore_quiet_hours=False,
                )
            )
    return done


# --- stale claims ------------------------------------------------------------------------


def recover_stale(session: Session, now: datetime, lease: timedelta = LEASE) -> int:
    """Rows left in `sending` by a dead worker become `unknown` and are flagged, never resent."""
    stale = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.status == "sending", OutboundMessage.claimed_at < now - lease
        )
    ).all()
    marked = 0
    for message in stale:
        result = session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == message.id, OutboundMessage.status == "sending")
            .values(
                status="unknown",
                error_message="worker stopped between claim and outcome; not resent",
                status_updated_at=now,
            )
            .execution_options(synchronize_session="fetch")
        )
        if result.rowcount:  # type: ignore[attr-defined]
            marked += 1
            _flag_unknown(session, message, now, "stale_claim")
    return marked


def _flag_unknown(session: Session, message: OutboundMessage, now: datetime, why: str) -> None:
    log_event(
        log,
        "send.unknown",
        logging.WARNING,
        message=message.id,
        to=mask_phone(message.to_address),
        why=why,
    )
    if message.participant_id is not None:
        raise_flag(
            session,
            reason="delivery_unknown",
            severity="high",
            now=now,
            participant_id=message.participant_id,
            detail={"message_id": message.id, "why": why},
        )


# --- 2. claim ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    message_id: int
    request: SendRequest
    attempts: int
    planned_contact_id: int | None = None
    # What the last look before the request needs (see _may_leave), known at claim time.
    participant_id: int | None = None
    purpose: str = ""
    zone: ZoneInfo | None = None  # the recipient's; None: the program's
    not_after: datetime | None = None
    ignore_quiet_hours: bool = False


def has_due(session: Session, now: datetime) -> bool:
    return (
        session.scalars(
            select(OutboundMessage.id)
            .where(OutboundMessage.status == "pending", OutboundMessage.send_after <= now)
            .limit(1)
        ).first()
        is not None
    )


def claim_batch(
    session: Session,
    now: datetime,
    worker_id: str,
    config: Config,
    counts: SendCounts,
    limit: int = BATCH,
    *,
    claimed_at: datetime | None = None,
) -> tuple[list[Claim], int]:
    """Claim up to `limit` due rows, at most one per recipient. Returns the claims and how many
    due rows were looked at (claimed or settled without a send); 0 means nothing is due."""
    m = OutboundMessage
    query = (
        select(
            m.id,
            m.participant_id,
            m.user_id,
            m.planned_contact_id,
            m.purpose,
            m.channel,
            m.to_address,
            m.body,
            m.idempotency_key,
            m.attempts,
            m.not_after,
            m.ignore_quiet_hours,
        )
        .where(m.status == "pending", m.send_after <= now)
        .order_by(m.send_after, m.id)
        .limit(limit * CANDIDATE_FACTOR)
    )
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    if not rows:
        return [], 0
    participant_ids = {r.participant_id for r in rows if r.participant_id is not None}
    people = {
        pid: (status, timezone, paused_until)
        for pid, status, timezone, paused_until in session.execute(
            select(
                Participant.id,
                Participant.status,
                Participant.timezone,
                Participant.checkins_paused_until,
            ).where(in_ids(session, Participant.id, participant_ids))
        )
    }
    contact_ids = {r.planned_contact_id for r in rows if r.planned_contact_id is not None}
    contact_states = {
        cid: state
        for cid, state in session.execute(
            select(PlannedContact.id, PlannedContact.state).where(
                in_ids(session, PlannedContact.id, contact_ids)
            )
        )
    }
    user_ids = {r.user_id for r in rows if r.participant_id is None and r.user_id is not None}
    active_users = set(
        session.scalars(select(User.id).where(User.id.in_(user_ids), User.active.is_(True)))
    )
    start, end = _quiet_window(session)
    program_zone = ZoneInfo(config.program_timezone)
    cancels = _Decisions()  # (status, reason) -> message ids
    zones: dict[int, ZoneInfo] = {}  # chosen row -> its recipient's zone
    contact_decisions = _Decisions()  # (state, reason) -> planned contact ids
    chosen: list[Any] = []
    recipients: set[tuple[str, object]] = set()
    looked = 0

    def cancel(row: Any, reason: str) -> None:
        cancels.decide("cancelled", reason, row.id)
        if row.planned_contact_id is not None:
            state = "skipped" if reason == "window_closed" else "cancelled"
            contact_decisions.decide(state, reason, row.planned_contact_id)

    for row in rows:
        if len(chosen) >= limit:
            break
        recipient: tuple[str, object] = (
            ("participant", row.participant_id)
            if row.participant_id is not None
            else ("user", row.user_id)
            if row.user_id is not None
            else ("address", row.to_address)
        )
        if recipient in recipients:
            continue  # the next batch, after this one's outcome
        looked += 1
        if row.not_after is not None and row.not_after <= now:
            cancel(row, "window_closed")
            counts.skipped += 1
            continue
        zone = program_zone
        if row.participant_id is not None:
            status, timezone, paused_until = people[row.participant_id]
            zone = ZoneInfo(timezone)
            if status == "opted_out" or (
                status in ("paused", "closed") and row.purpose not in SENT_WHILE_PAUSED
            ):
                cancel(row, f"participant_{status}")
                counts.cancelled += 1
                continue
            held = held_until(row.purpose, paused_until, now)
            if held is not None:  # the person's own PAUSE (see enqueue_due)
                if row.not_after is not None and held >= row.not_after:
                    cancel(row, "checkins_paused")
                    counts.cancelled += 1
                else:
                    cancels.deferred.append({"id": row.id, "send_after": held})
                    counts.deferred += 1
                continue
            if contact_states.get(row.planned_contact_id) == "cancelled":
                cancel(row, "superseded")
                counts.cancelled += 1
                continue
        elif row.user_id is not None and row.user_id not in active_users:
            cancel(row, "user_inactive")
            counts.cancelled += 1
            continue
        if not row.ignore_quiet_hours and in_quiet_hours(now, zone, start, end):
            morning = next_quiet_end(now, zone, start, end)
            if row.not_after is not None and morning >= row.not_after:
                cancel(row, "window_closed")
                counts.skipped += 1
            else:
                cancels.deferred.append({"id": row.id, "send_after": morning})
                counts.deferred += 1
            continue
        recipients.add(recipient)
        chosen.append(row)
        zones[row.id] = zone
    for (status, reason), ids in cancels.by_reason.items():
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(ids), OutboundMessage.status == "pending")
            .values(status=status, error_message=reason, status_updated_at=now)
            .execution_options(synchronize_session=False)
        )
    for (state, reason), ids in contact_decisions.by_reason.items():
        _decide_contacts(session, ids, state, reason, now)
    if cancels.deferred:
        session.execute(update(OutboundMessage), cancels.deferred)
    if not chosen:
        return [], looked
    claimed = set(
        session.scalars(
            update(OutboundMessage)
            .where(
                in_ids(session, OutboundMessage.id, [r.id for r in chosen]),
                OutboundMessage.status == "pending",
            )
            .values(
                status="sending",
                claimed_at=claimed_at or now,  # the lease counts from the claim itself
                claimed_by=worker_id,
                attempts=OutboundMessage.attempts + 1,
            )
            .returning(OutboundMessage.id)
            .execution_options(synchronize_session=False)
        )
    )
    callback = f"{config.public_base_url}/twilio/status"
    return [
        Claim(
            message_id=r.id,
            request=SendRequest(
                to=r.to_address,
                body=r.body,
                channel=r.channel,
                idempotency_key=r.idempotency_key,
                status_callback=callback,
            ),
            attempts=r.attempts + 1,
            planned_contact_id=r.planned_contact_id,
            participant_id=r.participant_id,
            purpose=r.purpose,
            zone=zones[r.id],
            not_after=r.not_after,
            ignore_quiet_hours=r.ignore_quiet_hours,
        )
        for r in chosen
        if r.id in claimed
    ], looked


def release(session: Session, claims: Sequence[Claim], worker_id: str) -> int:
    """Give back claims that were never handed to the transport (known unsent)."""
    ids = [c.message_id for c in claims]
    if not ids:
        return 0
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id.in_(ids),
            OutboundMessage.status == "sending",
            OutboundMessage.claimed_by == worker_id,
        )
        .values(
            status="pending",
            claimed_at=None,
            claimed_by=None,
            attempts=OutboundMessage.attempts - 1,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- 3. outcome --------------------------------------------------------------------------


def record_sent_many(
    session: Session, sent: Sequence[tuple[Claim, SendResult]], now: datetime
) -> None:
    if not sent:
        return
    # `unknown` too: if a slow worker comes back after its claim was declared stale, the SID
    # it got is the better information.
    if is_postgresql(session):
        table, dialect = _outbox_table(), session.get_bind().dialect
        # One statement with three bound arrays instead of an executemany (see bot/bulk.py).
        session.execute(
            text(
                "UPDATE outbound_messages SET provider_sid = v.sid, status = v.status,"
                " sent_at = :now, status_updated_at = :now"
                " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:sids AS VARCHAR(64)[]),"
                " CAST(:statuses AS VARCHAR(12)[])) AS v(id, sid, status)"
                " WHERE outbound_messages.id = v.id"
                " AND outbound_messages.status IN ('sending', 'unknown')"
                " AND outbound_messages.provider_sid IS NULL"
            ).bindparams(
                bindparam("now", now, type_=table.c.sent_at.type),
                array_param("ids", [c.message_id for c, _ in sent], table.c.id.type, dialect),
                array_param(
                    "sids", [r.provider_sid for _, r in sent], table.c.provider_sid.type, dialect
                ),
                array_param(
                    "statuses",
                    [PROVIDER_STATUS.get(r.status, "queued") for _, r in sent],
                    table.c.status.type,
                    dialect,
                ),
            )
        )
    else:
        _record_sent_executemany(session, sent, now)
    contact_ids = [c.planned_contact_id for c, _ in sent if c.planned_contact_id is not None]
    if contact_ids:
        session.execute(
            update(PlannedContact)
            .where(
                in_ids(session, PlannedContact.id, contact_ids), PlannedContact.state == "queued"
            )
            .values(state="sent", decided_at=now)
            .execution_options(synchronize_session=False)
        )


def _record_sent_executemany(
    session: Session, sent: Sequence[tuple[Claim, SendResult]], now: datetime
) -> None:
    table = _outbox_table()
    session.execute(
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            # Not IN (...): an expanding parameter cannot go into an executemany.
            or_(table.c.status == "sending", table.c.status == "unknown"),
            table.c.provider_sid.is_(None),
        )
        .values(
            provider_sid=bindparam("b_sid"),
            status=bindparam("b_status"),
            sent_at=now,
            status_updated_at=now,
        ),
        [
            {
                "b_id": claim.message_id,
                "b_sid": result.provider_sid,
                "b_status": PROVIDER_STATUS.get(result.status, "queued"),
            }
            for claim, result in sent
        ],
    )


def record_sent(
    session: Session, claim: Claim, provider_sid: str, provider_status: str, now: datetime
) -> None:
    if claim.planned_contact_id is None:
        contact_id = session.scalar(
            select(OutboundMessage.planned_contact_id).where(OutboundMessage.id == claim.message_id)
        )
        claim = Claim(claim.message_id, claim.request, claim.attempts, contact_id)
    record_sent_many(session, [(claim, SendResult(provider_sid, provider_status))], now)


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    if retry_after is not None and retry_after > 0:
        return min(timedelta(seconds=retry_after), BACKOFF_MAX)
    factor: int = 2 ** max(attempts - 1, 0)
    return min(BACKOFF_BASE * factor, BACKOFF_MAX)


def record_error(
    session: Session, claim: Claim, error: TransportError, now: datetime, counts: SendCounts
) -> None:
    message = session.get(OutboundMessage, claim.message_id)
    assert message is not None
    if message.status != "sending":
        return
    message.error_code = error.code
    message.error_message = str(error)[:255]
    message.status_updated_at = now
    if error.request_sent:
        message.status = "unknown"
        counts.unknown += 1
        _flag_unknown(session, message, now, "timeout_after_request")
        return
    retry_at = now + backoff(claim.attempts, error.retry_after)
    retry_ok = message.not_after is None or retry_at < message.not_after
    if not error.permanent and claim.attempts < MAX_ATTEMPTS and retry_ok:
        message.status = "pending"
        message.send_after = retry_at
        counts.retried += 1
        return
    message.status = "failed"
    counts.failed += 1
    if message.planned_contact_id is not None:
        _decide_contact(session, message.planned_contact_id, "skipped", "send_failed", now)
    log_event(
        log,
        "send.failed",
        logging.WARNING,
        message=message.id,
        to=mask_phone(message.to_address),
        code=error.code,
        permanent=error.permanent,
    )
    if message.participant_id is None:
        return
    if error.code == UNSUBSCRIBED_CODE:
        # The carrier says this person texted STOP: the same opt-out as the status callback's
        # (cancels their plan and pending rows, records consent, flags `opted_out` for the coach).
        act_on_error_code(session, message, error.code, now=now)
    else:
        raise_flag(
            session,
            reason="delivery_failed",
            severity="high",
            now=now,
            participant_id=message.participant_id,
            detail={"message_id": message.id, "error_code": error.code},
        )


# --- rate --------------------------------------------------------------------------------


class RateLimiter:
    """A global send rate shared by every worker through one database row.

    `reserve(n)` takes n consecutive slots under the row lock (PostgreSQL: one autocommitted
    upsert; SQLite: BEGIN IMMEDIATE): `first = max(next_at, clock)`, `next_at` becomes
    `first + n * interval`. So slots never overlap, whatever the number of workers, and there
    is no burst after idle time (a token bucket with capacity one); `interval` is
    (1 + guard) / rate.

    A worker sends on its slots through `next_slot` and `wait_for`: `wait_for` sleeps until
    the slot (re-reading the clock after every sleep, so nothing leaves early) and then says
    whether the clock is still within `late_tolerance` of it. A slot missed by more than that
    (the process was not scheduled in time, a commit or the previous send took too long) is
    dropped and the worker takes another; a late send is what would overfill a window. With
    `late_tolerance <= guard`, the release instants (the clock read that allowed each send) of
    any `rate` + 1 sends span at least 1 + guard - late_tolerance >= 1 second: no 1-second
    window ever holds more than `rate` of them (for a whole-number rate; a fractional rate r
    bounds a window to floor(r) + 1). This assumes the workers' clocks agree (one host, or
    NTP): skew between hosts adds to lateness unseen. It reads the real clock because it paces
    real network calls, not the simulated `now` of a tick.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        guard: float = RATE_GUARD,
        late_tolerance: float = LATE_TOLERANCE,
    ) -> None:
        if not 0 <= late_tolerance <= guard:
            raise ValueError("late_tolerance must be within the guard, or windows can overfill")
        self.sessions = sessions
        self.rate = rate_per_second
        self.interval = (1.0 + guard) / rate_per_second
        self.late_tolerance = late_tolerance
        self.clock = clock
        self.sleep = sleep
        # Slots this worker reserved and has not used yet (more than one only at >= 200/s).
        self._slots: deque[float] = deque()
        self.missed = 0
        self._engine: Engine | None = None
        # PostgreSQL: the connection reservations are made on, held until close() (see
        # _reserve_in_one_statement).
        self._connection: Connection | None = None

    def batch_size(self) -> int:
        """Messages per claim: what this rate sends in CLAIM_WINDOW_SECONDS, 1 to BATCH."""
        return max(1, min(BATCH, int(self.rate * CLAIM_WINDOW_SECONDS)))

    def reserve_size(self) -> int:
        """Slots per reservation: one at ordinary rates, so that several workers' sends
        interleave (a worker whose sends take longer than 1/rate still gets every other
        slot); more at very high rates, where a transaction per send would be the bottleneck."""
        return max(1, min(RESERVE_MAX, int(self.rate * RESERVE_WINDOW_SECONDS)))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self.sessions() as session:
                self._engine = cast(Engine, session.get_bind())
        return self._engine

    def reserve(self, count: int = 1) -> float:
        """Reserve `count` slots; returns the first (epoch seconds); slot i is first + i*interval."""
        # Whole microseconds (the column's precision), rounded up: rounded to nearest, the gap
        # between this reservation's last slot and the next reservation's first could be
        # half a microsecond under `interval`.
        span = timedelta(microseconds=math.ceil(count * self.interval * 1_000_000))
        if self.engine.dialect.name == "postgresql":
            return self._reserve_in_one_statement(span)
        return self._reserve_under_lock(span)

    def _reserve_in_one_statement(self, span: timedelta) -> float:
        """PostgreSQL: one autocommitted upsert, so one round trip. At very high rates this
        runs every RESERVE_MAX sends, and a transaction of four round trips, each waiting on a
        server busy with the tick's own writes, was most of a large tick. The row lock the
        upsert takes orders concurrent workers exactly as FOR UPDATE did. The clock is read
        just before the statement, so a worker that waited for another's reservation gets a
        first slot up to that wait in the past: it is then used if within late_tolerance or
        dropped, so spacing and the rate still hold (they depend only on the slots, which never
        overlap, and on wait_for); only a slot may be lost. Autocommitted, the upsert holds the
        row lock only while it runs: never across the worker's sends."""
        clock = datetime.fromtimestamp(self.clock(), UTC)
        table = cast(Table, SendRateSlot.__table__)
        statement = (
            postgresql.insert(table)
            .values(id=1, next_at=clock + span)
            .on_conflict_do_update(
                index_elements=["id"],
                set_={"next_at": func.greatest(table.c.next_at, clock) + span},
            )
            .returning(table.c.next_at)
        )
        for attempt in (1, 2):
            if self._connection is None:
                # Held, not checked out per reservation: a checkout pings the server first,
                # a second round trip each time.
                self._connection = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            try:
                next_at: datetime = self._connection.execute(statement).scalar_one()
            except Exception as exc:
                self.close()  # a broken connection is not used again
                # Lost (an idle timeout, a server restart) where the checkout's ping would
                # have noticed: once more on a new connection. Safe even if the lost upsert
                # committed: its slots are only lost, never handed out twice.
                lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
                if attempt == 2 or not lost:
                    raise
            else:
                return (next_at - span).timestamp()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def __enter__(self) -> RateLimiter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Give back the connection reservations were made on (PostgreSQL). A later
        reservation opens a new one."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()

    def _reserve_under_lock(self, span: timedelta) -> float:
        """SQLite: BEGIN IMMEDIATE holds the only write lock while the row is read and moved."""
        with session_scope(self.sessions) as session:
            query = select(SendRateSlot.next_at).where(SendRateSlot.id == 1)
            next_at = session.execute(query).scalar_one_or_none()
            if next_at is None:
                session.execute(
                    sqlite.insert(SendRateSlot)
                    .values(id=1, next_at=datetime.fromtimestamp(self.clock(), UTC))
                    .on_conflict_do_nothing(index_elements=["id"])
                )
                next_at = session.execute(query).scalar_one()
            # The clock is read under the lock: read before, it could be older than a slot
            # another worker took meanwhile, and the slot handed out would start out late.
            first = max(next_at, datetime.fromtimestamp(self.clock(), UTC))
            session.execute(
                update(SendRateSlot)
                .where(SendRateSlot.id == 1)
                .values(next_at=first + span)
                .execution_options(synchronize_session=False)
            )
        return first.timestamp()

    def next_slot(self, wanted: int = 1) -> float:
        """This worker's next slot, reserving up to `wanted` (capped by reserve_size) when it
        has none left."""
        if not self._slots:
            count = max(1, min(self.reserve_size(), wanted))
            first = self.reserve(count)
            self._slots.extend(first + i * self.interval for i in range(count))
        return self._slots.popleft()

    def wait_for(self, slot: float) -> bool:
        """Sleep until `slot`; True if a send may leave now, False if the slot was missed."""
        while (wait := slot - self.clock()) > 0:
            self.sleep(wait)
        if self.clock() - slot <= self.late_tolerance:
            return True
        self.missed += 1
        return False

    def acquire(self) -> None:
        """Return at a moment a send may leave (within late_tolerance after a slot)."""
        while not self.wait_for(self.next_slot()):
            pass


# --- the step ----------------------------------------------------------------------------


@dataclass
class _Outcomes:
    sent: list[tuple[Claim, SendResult]] = field(default_factory=list)
    errors: list[tuple[Claim, TransportError]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.errors)


def _reply_expectations_unless_failing(
    session: Session, now: datetime, sent: Sequence[tuple[Claim, SendResult]]
) -> int:
    """create_reply_expectations in a savepoint. If it fails (a broken escalation setting,
    say), the record of what was sent must still commit: otherwise those rows would stay
    `sending` and end `unknown`, flagged, though they went out. The failure is logged and the
    sweep's own pass makes the expectations (and meets the failure where it belongs)."""
    try:
        with session.begin_nested():
            return create_reply_expectations(session, now, [c.message_id for c, _ in sent])
    except Exception as exc:
        # Only the class: an error's text may quote SQL parameters.
        log_event(log, "send.expectations_failed", level=logging.ERROR, error=type(exc).__name__)
        return 0


def _commit_outcomes(
    sessions: sessionmaker[Session], outcomes: _Outcomes, now: datetime, counts: SendCounts
) -> None:
    if not outcomes:
        return
    expectations = 0
    with session_scope(sessions) as session:
        record_sent_many(session, outcomes.sent, now)
        if is_postgresql(session) and outcomes.sent:
            # Their "reply by" expectations (the check-ins among them) in the same commit:
            # the sweep's create_expectations, after all the sending, then finds nothing left
            # to do for them (SQLite: the sweep makes them).
            expectations = _reply_expectations_unless_failing(session, now, outcomes.sent)
        for claim, error in outcomes.errors:
            record_error(session, claim, error, now, counts)
    counts.sent += len(outcomes.sent)
    counts.expectations += expectations
    for claim, result in outcomes.sent if log.isEnabledFor(logging.INFO) else ():
        log_event(
            log,
            "send.sent",
            message=claim.message_id,
            to=mask_phone(claim.request.to),
            sid=result.provider_sid,
        )
    outcomes.sent.clear()
    outcomes.errors.clear()


class _OutcomeWriter:
    """Commits outcomes, in order. With `background` (PostgreSQL) a group that is all
    successes is committed by one helper thread on its own connection while the sender goes
    on (its next batch's enqueue, its next sends): recording a success changes nothing the
    sender decides on. A group with any error is committed here, after everything handed to
    the thread (an error can opt a person out or skip their contact, which later claims and
    last looks must see). `drain` waits for the thread: before a claim (a person's second
    text is judged after the first one's outcome) and at the end of send_due, so the tick's
    sweep sees every success. A row whose success is still waiting is `sending`, as between
    a send and its flush: a crash leaves it to recover_stale, never resent."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        now: datetime,
        counts: SendCounts,
        *,
        background: bool,
    ) -> None:
        self.sessions, self.now, self.counts = sessions, now, counts
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="send-outcomes")
            if background
            else None
        )
        self._waiting: deque[Future[SendCounts]] = deque()
        # Called before errors are committed: send_due's discard of a batch read ahead, whose
        # open transaction may hold the locks an error's consequences (an opt-out cancels the
        # person's contacts) must take, and which must be decided after those consequences.
        self.before_errors: Callable[[], None] | None = None

    def commit(self, outcomes: _Outcomes) -> None:
        """Commit `outcomes` (now or on the helper thread) and empty it."""
        if not outcomes:
            return
        self._collect(block=False)  # a failed background commit stops the sender here
        if self._executor is None or outcomes.errors:
            try:
                if outcomes.errors and self.before_errors is not None:
                    self.before_errors()  # may raise the read-ahead's error: raised after
            finally:
                # The errors are recorded even then: a 21610 opts the person out, a known
                # unsent retryable goes back to `pending` (not `unknown` five minutes later).
                try:
                    self.drain()
                finally:
                    _commit_outcomes(self.sessions, outcomes, self.now, self.counts)
            return
        group = _Outcomes(sent=list(outcomes.sent))
        outcomes.sent.clear()
        self._waiting.append(self._executor.submit(self._commit_in_background, group))

    def _commit_in_background(self, group: _Outcomes) -> SendCounts:
        # Counted by the caller's thread (drain), not here: `counts` is not shared.
        counts = SendCounts()
        _commit_outcomes(self.sessions, group, self.now, counts)
        return counts

    def _collect(self, *, block: bool) -> None:
        while self._waiting and (block or self._waiting[0].done()):
            self.counts.add(self._waiting.popleft().result())  # re-raises its error

    def drain(self) -> None:
        """Return once every outcome handed over is committed (raises a commit's error)."""
        self._collect(block=True)

    def close(self) -> None:
        try:
            self.drain()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)


class _NextBatch:
    """PostgreSQL: the next batch of due contacts, read, decided, rendered and inserted by a
    helper thread while the current batch is sent, in a transaction left open. `take` commits
    it (the claim) once the current batch is done, so still at most one batch is ever claimed
    and not yet sent: a crash before `take` rolls it back (its contacts stay `planned`), and a
    stop discards it the same way. Its claim-time checks are then up to one batch older when
    its texts leave; the last look before each send (status, quiet hours, deadline) is made
    as always, after the commit."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="send-enqueue")
        self._future: Future[tuple[Session, Enqueued]] | None = None

    def start(
        self,
        now: datetime,
        config: Config,
        limit: int,
        renderer: _Renderer,
        worker_id: str,
        *,
        claimed_at: datetime,
    ) -> None:
        assert self._future is None

        def enqueue() -> tuple[Session, Enqueued]:
            session = self.sessions()
            try:
                step = enqueue_due(
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


def _not_sendable_now(session: Session, claims: Sequence[Claim]) -> dict[int, str]:
    """The people behind `claims` who are no longer active, read after the claim committed: a
    STOP, a pause or a close may have landed while the claim was being made. Usually empty."""
    people = {c.participant_id for c in claims if c.participant_id is not None}
    if not people:
        return {}
    rows = session.execute(
        select(Participant.id, Participant.status).where(
            in_ids(session, Participant.id, people), Participant.status != "active"
        )
    ).all()
    return {row.id: row.status for row in rows}


def _may_leave(
    claim: Claim,
    status: str | None,
    instant: datetime,
    window: tuple[time_of_day, time_of_day],
    program_zone: ZoneInfo,
) -> tuple[bool, bool]:
    """(may this message leave at `instant`, is the reason that time has run out). The claim's
    rules, applied to the person as they are now and to the clock as it is now: a tick that
    sends for minutes must not carry its start time into quiet hours or past a window's end."""
    if status == "opted_out" or (
        status in ("paused", "closed") and claim.purpose not in SENT_WHILE_PAUSED
    ):
        return False, False
    if claim.not_after is not None and claim.not_after <= instant:
        return False, True
    zone = claim.zone or program_zone
    if not claim.ignore_quiet_hours and in_quiet_hours(instant, zone, *window):
        return False, True
    return True, False


def _tick_clock(now: datetime, limiter: RateLimiter | None) -> Callable[[], datetime]:
    """The time as the tick goes on: its `now` plus the time spent since (on the limiter's
    clock, which tests can drive). A tick that sends for minutes is judged by this, not by the
    instant it started."""
    clock = limiter.clock if limiter is not None else time.monotonic
    started = clock()
    return lambda: now + timedelta(seconds=clock() - started)


def send_batch(
    sessions: sessionmaker[Session],
    transport: Transport,
    now: datetime,
    claims: Sequence[Claim],
    *,
    worker_id: str,
    limiter: RateLimiter | None,
    counts: SendCounts,
    config: Config,
    should_stop: Callable[[], bool] = lambda: False,
    current_time: Callable[[], datetime] | None = None,
    writer: _OutcomeWriter | None = None,
) -> bool:
    """Send claimed messages, each at its rate slot; commit outcomes in groups; give back
    the claims never handed to the transport when stopped early. Just before each request a
    last look (see _may_leave) re-applies the claim's rules to the person's status now and to
    the time now; a claim that fails it, and every claim after it, is given back for the
    claim to decide again. Returns True when the time has run out for this tick (quiet hours
    began or a window closed since `now`): its caller stops, and the next tick, with a fresh
    `now`, decides. Outcomes go through `writer` (send_due's, which may commit successes in
    the background); without one they are committed here before returning."""
    own_writer = writer is None
    writer = writer or _OutcomeWriter(sessions, now, counts, background=False)
    outcomes = _Outcomes()
    handed = 0
    last_commit = time.monotonic()
    current_time = current_time or _tick_clock(now, limiter)
    with sessions() as session:  # one connection for both reads
        not_active = _not_sendable_now(session, claims)
        window = _quiet_window(session)
    program_zone = ZoneInfo(config.program_timezone)
    out_of_time = False
    try:
        for index, claim in enumerate(claims):
            if should_stop():
                break
            if limiter is not None:
                # A missed slot (see RateLimiter) is not used: the claim waits for another.
                while not should_stop():
                    slot = limiter.next_slot(len(claims) - index)
                    if outcomes and slot - limiter.clock() > FLUSH_GAP_SECONDS:
                        writer.commit(outcomes)  # while we wait anyway
                        last_commit = time.monotonic()
                    if limiter.wait_for(slot):
                        break
                else:
                    break  # stopped before this claim got a slot: it is given back below
            status = not_active.get(claim.participant_id) if claim.participant_id else None
            may_leave, out_of_time = _may_leave(claim, status, current_time(), window, program_zone)
            if not may_leave:
                break  # this claim and the rest are given back below
            # From here on the outcome of this claim may be unknown: it is never given back.
            handed += 1
            try:
                result = transport.send(claim.request)
            except TransportError as exc:
                outcomes.errors.append((claim, exc))
            except Exception as exc:
                # Not a classified transport error: we cannot know whether the request left.
                outcomes.errors.append(
                    (
                        claim,
                        TransportError(
                            f"unexpected {type(exc).__name__}", permanent=False, request_sent=True
                        ),
                    )
                )
            else:
                outcomes.sent.append((claim, result))
            if time.monotonic() - last_commit >= FLUSH_SECONDS:
                writer.commit(outcomes)
                last_commit = time.monotonic()
    finally:
        try:
            writer.commit(outcomes)
            if own_writer:
                writer.close()
        finally:
            if handed < len(claims):
                with session_scope(sessions) as session:
                    release(session, claims[handed:], worker_id)
    return out_of_time


def send_due(
    sessions: sessionmaker[Session],
    transport: Transport,
    config: Config,
    now: datetime,
    *,
    worker_id: str,
    limiter: RateLimiter | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_messages: int | None = None,
) -> SendCounts:
    """Recover dead claims, then send batches until nothing is due, `max_messages` rows were
    looked at, or `should_stop()` (SIGTERM) says so. Each batch is either outbox rows already
    waiting (retries, replies, pages, a person's second text), claimed by claim_batch, or,
    once none is due, due planned contacts, inserted already claimed by enqueue_due."""
    counts = SendCounts()
    current_time = _tick_clock(now, limiter)
    renderer = _Renderer()  # templates compiled and bodies rendered once per tick
    with session_scope(sessions) as session:
        counts.unknown += recover_stale(session, now)
    batch = limiter.batch_size() if limiter is not None else BATCH
    looked = 0
    pending = True  # outbox rows may be waiting
    contacts = True  # planned contacts may be due
    with sessions() as session:
        background = is_postgresql(session)  # SQLite has one writer at a time anyway
    writer = _OutcomeWriter(sessions, now, counts, background=background)
    upcoming = _NextBatch(sessions) if background else None
    if upcoming is not None:
        writer.before_errors = upcoming.discard
    try:
        while not should_stop():
            limit = batch if max_messages is None else min(batch, max_messages - looked)
            if limit <= 0:
                break
            claims: list[Claim] = []
            seen = 0
            step = upcoming.take() if upcoming is not None else None  # claimed now
            if step is None:
                if pending:
                    writer.drain()  # a person's next text is judged after the last outcome
                with session_scope(sessions) as session:
                    if pending:
                        claims, seen = claim_batch(
                            session,
                            now,
                            worker_id,
                            config,
                            counts,
                            limit,
                            claimed_at=current_time(),
                        )
                        pending = seen > 0
                    if not pending and contacts:
                        step = enqueue_due(
                            session,
                            now,
                            config,
                            limit,
                            renderer,
                            claimed_by=worker_id,
                            claimed_at=current_time(),
                        )
            if step is not None:
                counts.add(step.counts)
                claims, seen, contacts = step.claims, step.looked, step.more
                pending = step.pending > 0
            if seen == 0:
                break
            looked += seen
            if claims:
                next_limit = batch if max_messages is None else min(batch, max_messages - looked)
                if upcoming is not None and contacts and not pending and next_limit > 0:
                    upcoming.start(
                        now, config, next_limit, renderer, worker_id, claimed_at=current_time()
                    )
                out_of_time = send_batch(
                    sessions,
                    transport,
                    now,
                    claims,
                    worker_id=worker_id,
                    limiter=limiter,
                    counts=counts,
                    config=config,
                    should_stop=should_stop,
                    current_time=current_time,
                    writer=writer,
                )
                if out_of_time:
                    break  # `now` is stale for what is left: the next tick decides
    finally:
        try:
            if upcoming is not None:
                upcoming.close()  # a batch read ahead and not taken is rolled back, unclaimed
        finally:
            writer.close()  # every outcome committed before the tick goes on (the sweep)
    return counts
