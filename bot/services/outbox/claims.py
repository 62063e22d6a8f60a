"""Claims: a sender takes due `pending` rows (`sending`), gives back what it never handed to
the transport, and rows a dead sender left `sending` become `unknown`.

`claim_batch` reads due pending rows (retries, replies, pages, a person's second text;
PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the transaction holds the write lock from BEGIN
IMMEDIATE) and judges each with bot.services.sendability.decide at the claim's `now`: the
recipient is not opted out (never texted), paused or closed (only crisis replies go), the
message is not in the recipient's quiet hours (unless `ignore_quiet_hours`; then it is
deferred to the morning), its `not_after` has not passed (then it is cancelled and its planned
contact `skipped`). The rows that pass are claimed with one conditional UPDATE (`status =
'pending'` in the WHERE, RETURNING the ids actually claimed), committed by the caller *before*
any network call. A batch holds at most one message per recipient, so a person's second text
is judged after the first one's outcome (a 21610 on the first opts them out). A WhatsApp row
is judged against the person's 24-hour window (their last inbound text, read for the batch in
one query): free text inside it, its approved template outside it, and with none mapped it is
settled `needs_template` and one program-level `whatsapp_template_missing` flag is raised
(bot.services.whatsapp_window). While the program requires consent evidence, a row to someone
without a recorded consent source is deferred (bot.services.consent_evidence; a staff reply
to someone who texted in the last day answers them and goes).

`urgent_only` is the urgent lane's claim (scheduler/urgent.py): the same rules, over the due
pending pages, crisis replies and staff replies only (bot/models/messages.py URGENT_PENDING,
read through its own partial index). A row is claimed by whichever sender's conditional UPDATE
moves it first, the lane's or a tick's, never by both.

Twilio has no idempotency key on message create, so a row left in `sending` (the process died
between the claim and the outcome's commit) after it was handed to the transport cannot be
known to be unsent: `recover_stale` never resends it; once its claim is older than the lease
(far longer than the 10 s HTTP timeout) it is marked `unknown` and flagged `delivery_unknown`
(high). The sender commits `handed_at` on a group of claims just before it sends them
(`mark_handed`), so a claim a crashed pass never reached (`handed_at` NULL) is known unsent and
goes back to `pending` instead. A stop that is not a
crash gives the rows it never handed to the transport back with `release`: those are known
to be unsent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from bot.bulk import in_ids
from bot.config import Config
from bot.db import is_postgresql
from bot.log import log_event, mask_phone
from bot.models import OutboundMessage, Participant, PlannedContact, User
from bot.models.messages import URGENT_PENDING
from bot.services import consent_evidence, contacts, numbers, sendability, whatsapp_window
from bot.services.flags import raise_flag
from bot.transport.base import SendRequest

log = logging.getLogger(__name__)

# A claim older than this with no outcome belongs to a dead worker (the HTTP timeout is 10 s).
LEASE = timedelta(minutes=5)
# A claim reads this many candidates per message it may claim, to fill the batch while
# keeping one message per recipient.
CANDIDATE_FACTOR = 2


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
    # Refused for the account's sake (bot.services.outbox.account_errors): kept pending.
    held: int = 0

    def add(self, other: SendCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def count(self, verdict: sendability.Verdict) -> None:
        """Count a verdict that settles a message without a send."""
        if verdict.action == "cancelled":
            self.cancelled += 1
        elif verdict.action in ("skipped", "needs_template"):
            self.skipped += 1
        elif verdict.action == "deferred":
            self.deferred += 1


@dataclass(frozen=True)
class Claim:
    message_id: int
    request: SendRequest
    attempts: int
    planned_contact_id: int | None = None
    # What the last look before the request needs (see scheduler/send.py), known at claim time.
    participant_id: int | None = None
    purpose: str = ""
    zone: ZoneInfo | None = None  # the recipient's; None: the program's
    not_after: datetime | None = None
    ignore_quiet_hours: bool = False


def status_callback_url(public_base_url: str) -> str:
    return f"{public_base_url}/twilio/status"


def claim_batch(
    session: Session,
    now: datetime,
    worker_id: str,
    config: Config,
    counts: SendCounts,
    limit: int,
    *,
    claimed_at: datetime | None = None,
    urgent_only: bool = False,
) -> tuple[list[Claim], int]:
    """Claim up to `limit` due rows, at most one per recipient (`urgent_only`: pages, crisis
    replies and staff replies only). Returns the claims and how many due rows were looked at
    (claimed or settled without a send); 0 means nothing is due."""
    program_zone = ZoneInfo(config.program_timezone)
    status_callback = status_callback_url(config.public_base_url)
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
            m.content_sid,
            m.content_variables,
        )
        .where(text(URGENT_PENDING) if urgent_only else m.status == "pending")
        .where(m.send_after <= now)
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
    in_crisis = sendability.in_crisis(session, participant_ids)
    number_changed = numbers.with_number_changed(session, participant_ids)
    # Held until a consent source is recorded (when the program requires one); a staff reply
    # to someone who texted in the last day answers them and goes.
    evidence_missing = consent_evidence.held_for_evidence(session, participant_ids)
    last_inbound = whatsapp_window.last_inbound(
        session,
        {
            r.participant_id
            for r in rows
            if r.participant_id is not None
            and (
                r.channel == "whatsapp"
                or (r.purpose == "coach_reply" and r.participant_id in evidence_missing)
            )
        },
    )
    as_template: set[int] = set()  # chosen rows that go as their approved template
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
    quiet = sendability.quiet_hours(session)
    settled: dict[tuple[str, str], list[int]] = {}  # (status, reason) -> message ids
    contact_decisions: dict[tuple[str, str], list[int]] = {}  # (state, reason) -> contact ids
    deferred: list[dict[str, Any]] = []
    zones: dict[int, ZoneInfo] = {}  # chosen row -> its recipient's zone
    chosen: list[Any] = []
    needs_template: list[int] = []
    recipients: set[tuple[str, object]] = set()
    looked = 0
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
        zone, status, hold = program_zone, None, None
        if row.participant_id is not None:
            status, timezone, paused_until = people[row.participant_id]
            zone = ZoneInfo(timezone)
            hold = sendability.hold_for(
                row.purpose,
                now=now,
                paused_until=paused_until,
                crisis_open=row.participant_id in in_crisis,
                number_changed=row.participant_id in number_changed,
                evidence_missing=row.participant_id in evidence_missing,
                last_inbound=last_inbound.get(row.participant_id),
            )
        verdict = sendability.decide(
            now,
            status=status,
            purpose=row.purpose,
            not_after=row.not_after,
            zone=zone,
            quiet=quiet,
            ignore_quiet_hours=row.ignore_quiet_hours,
            withdrawn=sendability.SUPERSEDED
            if row.participant_id is not None
            and contact_states.get(row.planned_contact_id) == "cancelled"
            else None,
            hold=hold,
            user_active=row.participant_id is not None
            or row.user_id is None
            or row.user_id in active_users,
            whatsapp=sendability.WhatsApp(
                in_window=whatsapp_window.in_window(last_inbound.get(row.participant_id), now),
                has_template=row.content_sid is not None,
            )
            if row.channel == "whatsapp" and row.participant_id is not None
            else None,
        )
        if verdict.action == "send":
            recipients.add(recipient)
            chosen.append(row)
            zones[row.id] = zone
            if verdict is sendability.SEND_TEMPLATE:
                as_template.add(row.id)
            continue
        counts.count(verdict)
        if verdict.action == "deferred":
            deferred.append({"id": row.id, "send_after": verdict.send_after})
            continue
        if verdict.action == "needs_template":
            needs_template.append(row.id)
            if row.planned_contact_id is not None:
                key = ("skipped", "needs_template")
                contact_decisions.setdefault(key, []).append(row.planned_contact_id)
            continue
        settled.setdefault(("cancelled", verdict.reason), []).append(row.id)
        if row.planned_contact_id is not None:
            key = (verdict.action, verdict.reason)
            contact_decisions.setdefault(key, []).append(row.planned_contact_id)
    for (status, reason), ids in settled.items():
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(ids), OutboundMessage.status == "pending")
            .values(status=status, error_message=reason, status_updated_at=now)
            .execution_options(synchronize_session=False)
        )
    if needs_template:
        mark_needs_template(session, needs_template, now)
    for (state, reason), ids in contact_decisions.items():
        contacts.decide(session, ids, state, reason, now)
    if deferred:
        session.execute(update(OutboundMessage), deferred)
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
                handed_at=None,
                attempts=OutboundMessage.attempts + 1,
            )
            .returning(OutboundMessage.id)
            .execution_options(synchronize_session=False)
        )
    )
    return [
        Claim(
            message_id=r.id,
            request=SendRequest(
                to=r.to_address,
                body=r.body,
                channel=r.channel,
                idempotency_key=r.idempotency_key,
                status_callback=status_callback,
                content_sid=r.content_sid if r.id in as_template else None,
                content_variables=r.content_variables if r.id in as_template else None,
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


def mark_needs_template(
    session: Session, message_ids: Sequence[int], now: datetime, *, code: int | None = None
) -> int:
    """WhatsApp messages that may not go as free text (outside the person's window, or refused
    by WhatsApp with 63016) and have no approved template: `needs_template`, never sent as free
    text, and the one program-level flag raised for coordinators. Returns how many moved."""
    if not message_ids:
        return 0
    values: dict[str, Any] = {
        "status": "needs_template",
        "error_message": "no approved WhatsApp template outside the 24-hour window",
        "status_updated_at": now,
    }
    if code is not None:
        values["error_code"] = code
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id.in_(list(message_ids)),
            OutboundMessage.status.in_(("pending", "sending", "unknown", "queued", "sent")),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    moved = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if moved:
        log_event(log, "send.needs_template", logging.WARNING, messages=moved, code=code)
        whatsapp_window.template_missing(
            session, now, {"messages": moved, "first_message_id": min(message_ids)}
        )
    return moved


def urgent_due(session: Session, now: datetime) -> bool:
    """Whether a page, crisis reply or staff reply is pending and due: the urgent lane's poll,
    one probe of its partial index, before it takes the claim's locks."""
    m = OutboundMessage
    query = select(m.id).where(text(URGENT_PENDING), m.send_after <= now).limit(1)
    return session.scalar(query) is not None


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
            handed_at=None,
            attempts=OutboundMessage.attempts - 1,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def mark_handed(
    session: Session, claims: Sequence[Claim], worker_id: str, now: datetime
) -> set[int]:
    """Record that these claims are about to be handed to the transport (the caller commits
    before the first of them is sent). Returns the ids marked: a claim no longer this
    worker's (recovered as never handed while this worker was stalled) is not, and must not
    be sent."""
    ids = [c.message_id for c in claims]
    if not ids:
        return set()
    return set(
        session.scalars(
            update(OutboundMessage)
            .where(
                in_ids(session, OutboundMessage.id, ids),
                OutboundMessage.status == "sending",
                OutboundMessage.claimed_by == worker_id,
            )
            .values(handed_at=now)
            .returning(OutboundMessage.id)
            .execution_options(synchronize_session=False)
        )
    )


def recover_stale(session: Session, now: datetime, lease: timedelta = LEASE) -> int:
    """Rows left in `sending` by a dead worker: those it never handed to the transport
    (`handed_at` NULL: known unsent) go back to `pending` with their attempt given back; those
    it handed become `unknown` and are flagged, never resent. Returns how many became unknown."""
    m = OutboundMessage
    returned = session.execute(
        update(m)
        .where(m.status == "sending", m.claimed_at < now - lease, m.handed_at.is_(None))
        .values(
            status="pending",
            claimed_at=None,
            claimed_by=None,
            attempts=m.attempts - 1,
            status_updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if returned.rowcount:  # type: ignore[attr-defined]
        log_event(
            log,
            "send.stale_claims_returned",
            logging.WARNING,
            count=int(returned.rowcount),  # type: ignore[attr-defined]
        )
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
            flag_unknown(session, message, now, "stale_claim")
    return marked


def flag_unknown(session: Session, message: OutboundMessage, now: datetime, why: str) -> None:
    """A message whose outcome cannot be known: logged, and flagged for the person's coach."""
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
