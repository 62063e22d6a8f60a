"""send_due(now): due planned contacts become outbox rows; outbox rows are claimed and sent.

Exactly once, by keys and claims:

1. `enqueue_due` turns each due planned contact into one outbox row with the idempotency key
   `contact:<planned_contact_id>` (unique), and moves the contact planned -> queued with a
   conditional UPDATE. Two ticks at once produce one row.
2. `claim_next` takes one pending row with a conditional UPDATE (`status = 'pending'` in the
   WHERE; on PostgreSQL the candidate is picked `FOR UPDATE SKIP LOCKED` so workers do not queue
   on one row). The checks that must be true *at send time* are made inside the claim: the
   recipient is not opted out (never texted), paused or closed (only crisis replies go), the
   message is not in the recipient's quiet hours (unless `ignore_quiet_hours`), and its
   `not_after` has not passed (then it is cancelled and its planned contact `skipped`).
3. The claim is committed (status `sending`) *before* the network call; the outcome is
   committed after it. Twilio has no idempotency key on message create, so a row that is left
   in `sending` (the process died between the claim and the outcome's commit) cannot be known
   to be unsent: the request may have left, or Twilio may have accepted it just before the
   crash. `recover_stale` therefore never resends such a row: once its claim is older than the
   lease (far longer than the 10 s HTTP timeout) it is marked `unknown` and flagged
   `delivery_unknown` (high) for a coach to check with the participant. A duplicate text to a
   person who asked for fewer, or a second reminder of a court date, costs more trust than one
   possibly missing text that a human follows up.
4. Retryable errors (429, 20429, 5xx, connection failures before the request left) go back to
   `pending` with exponential backoff (or the server's Retry-After); permanent errors are
   `failed` with the error code and never retried; a timeout after the request left is
   `unknown` and flagged.

Rate: every send first reserves a slot from the single `send_rate_slots` row (see RateLimiter),
so the configured messages per second hold across any number of workers.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import session_scope
from bot.log import log_event, mask_phone
from bot.models import (
    Appointment,
    OutboundMessage,
    Participant,
    PlannedContact,
    SendRateSlot,
    User,
)
from bot.services.flags import raise_flag
from bot.services.outbox import enqueue
from bot.services.settings import get_setting
from bot.timeutil import in_quiet_hours, next_quiet_end, parse_hhmm
from bot.transport.base import SendRequest, Transport, TransportError

log = logging.getLogger(__name__)

BATCH = 200
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

    def add(self, other: SendCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _quiet_window(session: Session) -> tuple[time_of_day, time_of_day]:
    value = get_setting(session, "quiet_hours")
    return parse_hhmm(value["start"]), parse_hhmm(value["end"])


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- 1. planned contact -> outbox row ----------------------------------------------------


def _decide_contact(
    session: Session, contact_id: int, state: str, reason: str, now: datetime
) -> None:
    session.execute(
        update(PlannedContact)
        .where(PlannedContact.id == contact_id, PlannedContact.state.in_(("planned", "queued")))
        .values(state=state, state_reason=reason, decided_at=now)
        .execution_options(synchronize_session="fetch")
    )


def _later_reminder_due(session: Session, contact: PlannedContact, now: datetime) -> bool:
    later = session.scalars(
        select(PlannedContact.id)
        .where(
            PlannedContact.appointment_id == contact.appointment_id,
            PlannedContact.id != contact.id,
            PlannedContact.state.in_(("planned", "queued", "sent")),
            PlannedContact.send_after > contact.send_after,
            PlannedContact.send_after <= now,
        )
        .limit(1)
    ).first()
    return later is not None


def enqueue_due(
    session: Session, now: datetime, config: Config, limit: int = BATCH
) -> tuple[SendCounts, bool]:
    """Queue up to `limit` due planned contacts; returns (counts, more)."""
    from bot.services.templates import participant_context, render_message

    counts = SendCounts()
    start, end = _quiet_window(session)
    query = (
        select(PlannedContact)
        .where(PlannedContact.state == "planned", PlannedContact.send_after <= now)
        .order_by(PlannedContact.send_after, PlannedContact.id)
        .limit(limit)
    )
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    contacts = session.scalars(query).all()
    for contact in contacts:
        participant = session.get(Participant, contact.participant_id)
        assert participant is not None
        zone = ZoneInfo(participant.timezone)
        if participant.status != "active":
            _decide_contact(
                session, contact.id, "cancelled", f"participant_{participant.status}", now
            )
            counts.cancelled += 1
            continue
        if contact.not_after <= now:
            # Downtime or a long quiet night: the window closed. Recorded, never sent late.
            _decide_contact(session, contact.id, "skipped", "window_closed", now)
            counts.skipped += 1
            continue
        appointment = None
        if contact.appointment_id is not None:
            appointment = session.get(Appointment, contact.appointment_id)
            if appointment is None or appointment.status not in ("scheduled", "confirmed"):
                _decide_contact(session, contact.id, "cancelled", "appointment_cancelled", now)
                counts.cancelled += 1
                continue
            if _later_reminder_due(session, contact, now):
                # After downtime the 3-day and the 1-day reminder can both be due: only the
                # latest goes, as for an appointment imported late (Precise rules, Reminders).
                _decide_contact(session, contact.id, "skipped", "later_reminder_due", now)
                counts.skipped += 1
                continue
        if in_quiet_hours(now, zone, start, end):
            # Only when settings changed after planning: the planner keeps slots out of quiet hours.
            morning = next_quiet_end(now, zone, start, end)
            if morning >= contact.not_after:
                _decide_contact(session, contact.id, "skipped", "window_closed", now)
                counts.skipped += 1
            else:
                contact.send_after = morning
                counts.deferred += 1
            continue
        try:
            context = participant_context(session, participant, config, appointment)
            body = render_message(session, contact.template_key, participant.language, context)
        except Exception as exc:  # a broken template must not stop every other contact
            log_event(
                log,
                "send.render_failed",
                logging.ERROR,
                contact=contact.id,
                template=contact.template_key,
                error=type(exc).__name__,
            )
            _decide_contact(session, contact.id, "skipped", "render_failed", now)
            counts.skipped += 1
            continue
        result = enqueue(
            session,
            idempotency_key=f"contact:{contact.id}",
            purpose=contact.kind,
            channel=participant.channel,
            to_address=participant.address,
            body=body,
            now=now,
            send_after=now,
            not_after=contact.not_after,
            participant_id=participant.id,
            planned_contact_id=contact.id,
        )
        session.execute(
            update(PlannedContact)
            .where(PlannedContact.id == contact.id, PlannedContact.state == "planned")
            .values(state="queued", decided_at=now)
            .execution_options(synchronize_session="fetch")
        )
        if result.created:
            counts.queued += 1
    session.flush()
    return counts, len(contacts) >= limit


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


class Decision(enum.Enum):
    NOTHING_DUE = "nothing_due"
    DECIDED = "decided"


NOTHING_DUE, DECIDED = Decision.NOTHING_DUE, Decision.DECIDED


@dataclass(frozen=True)
class Claim:
    message_id: int
    request: SendRequest
    attempts: int


def _candidate(session: Session, now: datetime) -> OutboundMessage | None:
    query = (
        select(OutboundMessage)
        .where(OutboundMessage.status == "pending", OutboundMessage.send_after <= now)
        .order_by(OutboundMessage.send_after, OutboundMessage.id)
        .limit(1)
    )
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).first()


def has_due(session: Session, now: datetime) -> bool:
    return (
        session.scalars(
            select(OutboundMessage.id)
            .where(OutboundMessage.status == "pending", OutboundMessage.send_after <= now)
            .limit(1)
        ).first()
        is not None
    )


def _cancel_message(
    session: Session, message: OutboundMessage, status: str, reason: str, now: datetime
) -> None:
    message.status = status
    message.error_message = reason
    message.status_updated_at = now
    if message.planned_contact_id is not None:
        state = "skipped" if reason == "window_closed" else "cancelled"
        _decide_contact(session, message.planned_contact_id, state, reason, now)


def claim_next(
    session: Session, now: datetime, worker_id: str, config: Config, counts: SendCounts
) -> Claim | Decision:
    """Claim one due row. Returns the claim; NOTHING_DUE when nothing is due; DECIDED when a
    row was looked at and settled without a send (cancelled, deferred, lost to a rival)."""
    message = _candidate(session, now)
    if message is None:
        return NOTHING_DUE
    if message.not_after is not None and message.not_after <= now:
        _cancel_message(session, message, "cancelled", "window_closed", now)
        counts.skipped += 1
        return DECIDED
    zone = ZoneInfo(config.program_timezone)
    if message.participant_id is not None:
        participant = session.get(Participant, message.participant_id)
        assert participant is not None
        zone = ZoneInfo(participant.timezone)
        if participant.status == "opted_out" or (
            participant.status in ("paused", "closed") and message.purpose not in SENT_WHILE_PAUSED
        ):
            _cancel_message(session, message, "cancelled", f"participant_{participant.status}", now)
            counts.cancelled += 1
            return DECIDED
        if message.planned_contact_id is not None:
            contact = session.get(PlannedContact, message.planned_contact_id)
            if contact is not None and contact.state == "cancelled":
                _cancel_message(session, message, "cancelled", "superseded", now)
                counts.cancelled += 1
                return DECIDED
    elif message.user_id is not None:
        user = session.get(User, message.user_id)
        if user is None or not user.active:
            _cancel_message(session, message, "cancelled", "user_inactive", now)
            counts.cancelled += 1
            return DECIDED
    if not message.ignore_quiet_hours:
        start, end = _quiet_window(session)
        if in_quiet_hours(now, zone, start, end):
            morning = next_quiet_end(now, zone, start, end)
            if message.not_after is not None and morning >= message.not_after:
                _cancel_message(session, message, "cancelled", "window_closed", now)
                counts.skipped += 1
            else:
                message.send_after = morning
                counts.deferred += 1
            return DECIDED
    claimed = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message.id, OutboundMessage.status == "pending")
        .values(
            status="sending",
            claimed_at=now,
            claimed_by=worker_id,
            attempts=OutboundMessage.attempts + 1,
        )
        .execution_options(synchronize_session="fetch")
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return DECIDED  # another worker was first
    return Claim(
        message_id=message.id,
        request=SendRequest(
            to=message.to_address,
            body=message.body,
            channel=message.channel,
            idempotency_key=message.idempotency_key,
            status_callback=f"{config.public_base_url}/twilio/status",
        ),
        attempts=message.attempts + 1,
    )


# --- 3. outcome --------------------------------------------------------------------------


def record_sent(
    session: Session, claim: Claim, provider_sid: str, provider_status: str, now: datetime
) -> None:
    status = PROVIDER_STATUS.get(provider_status, "queued")
    # `unknown` too: if a slow worker comes back after its claim was declared stale, the SID
    # it got is the better information.
    session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == claim.message_id,
            OutboundMessage.status.in_(("sending", "unknown")),
            OutboundMessage.provider_sid.is_(None),
        )
        .values(provider_sid=provider_sid, status=status, sent_at=now, status_updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    contact_id = session.scalar(
        select(OutboundMessage.planned_contact_id).where(OutboundMessage.id == claim.message_id)
    )
    if contact_id is not None:
        session.execute(
            update(PlannedContact)
            .where(PlannedContact.id == contact_id, PlannedContact.state == "queued")
            .values(state="sent", decided_at=now)
            .execution_options(synchronize_session="fetch")
        )


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
    if message.participant_id is not None:
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

    `acquire()` reserves the next slot: under the row lock (PostgreSQL `FOR UPDATE`; SQLite's
    BEGIN IMMEDIATE) it reads `next_at`, takes `slot = max(next_at, wall clock)`, stores
    `slot + 1/rate` and commits; then it sleeps until `slot`. Slots are spaced exactly 1/rate
    apart whatever the number of workers, so the rate is never exceeded and there is no burst
    after idle time (a token bucket with capacity one). It reads the real clock because it
    paces real network calls, not the simulated `now` of a tick.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sessions = sessions
        self.interval = timedelta(seconds=1.0 / rate_per_second)
        self.clock = clock
        self.sleep = sleep

    def acquire(self) -> None:
        with session_scope(self.sessions) as session:
            wall = datetime.fromtimestamp(self.clock(), UTC)
            query = select(SendRateSlot).where(SendRateSlot.id == 1)
            if _is_postgres(session):
                query = query.with_for_update()
            row = session.scalars(query).first()
            if row is None:
                insert_fn = postgresql.insert if _is_postgres(session) else sqlite.insert
                session.execute(
                    insert_fn(SendRateSlot)
                    .values(id=1, next_at=wall)
                    .on_conflict_do_nothing(index_elements=["id"])
                )
                row = session.scalars(query).one()
            slot = max(row.next_at, wall)
            row.next_at = slot + self.interval
        wait = (slot - datetime.fromtimestamp(self.clock(), UTC)).total_seconds()
        if wait > 0:
            self.sleep(wait)


# --- the step ----------------------------------------------------------------------------


def send_one(
    sessions: sessionmaker[Session],
    transport: Transport,
    config: Config,
    now: datetime,
    *,
    worker_id: str,
    limiter: RateLimiter | None,
    counts: SendCounts,
) -> bool:
    """Claim and send at most one message; returns whether there may be more."""
    if limiter is not None:
        with session_scope(sessions) as session:
            if not has_due(session, now):
                return False
        limiter.acquire()
    with session_scope(sessions) as session:
        claim = claim_next(session, now, worker_id, config, counts)
    if claim is NOTHING_DUE:
        return False
    if not isinstance(claim, Claim):
        return True
    try:
        result = transport.send(claim.request)
    except TransportError as exc:
        with session_scope(sessions) as session:
            record_error(session, claim, exc, now, counts)
        return True
    except Exception as exc:
        # Not a classified transport error: we cannot know whether the request left.
        with session_scope(sessions) as session:
            record_error(
                session,
                claim,
                TransportError(
                    f"unexpected {type(exc).__name__}", permanent=False, request_sent=True
                ),
                now,
                counts,
            )
        return True
    with session_scope(sessions) as session:
        record_sent(session, claim, result.provider_sid, result.status, now)
    counts.sent += 1
    log_event(
        log,
        "send.sent",
        message=claim.message_id,
        to=mask_phone(claim.request.to),
        sid=result.provider_sid,
    )
    return True


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
    """Queue due contacts, recover dead claims, then send one message at a time until nothing
    is due, `max_messages` were looked at, or `should_stop()` (SIGTERM) says so."""
    counts = SendCounts()
    more = True
    while more and not should_stop():
        with session_scope(sessions) as session:
            step, more = enqueue_due(session, now, config)
        counts.add(step)
    with session_scope(sessions) as session:
        counts.unknown += recover_stale(session, now)
    looked = 0
    while not should_stop() and (max_messages is None or looked < max_messages):
        looked += 1
        if not send_one(
            sessions,
            transport,
            config,
            now,
            worker_id=worker_id,
            limiter=limiter,
            counts=counts,
        ):
            break
    return counts
