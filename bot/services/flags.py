"""Flags: open (or raise) one per participant and reason, record every change as an event,
and list them for `checkin flags` and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.db import is_postgresql
from bot.log import mask_phone
from bot.models import Flag, FlagEvent, Participant, User
from bot.models.flags import PROGRAM_REASONS, SEVERITY_RANK, severity_for
from bot.services.outbox import status as outbox_status

# Ordering used everywhere flags are listed: urgent first, then high, normal, info; oldest first.
SEVERITY_ORDER = case(
    {"urgent": 0, "high": 1, "normal": 2, "info": 3}, value=Flag.severity, else_=4
)


@dataclass(frozen=True)
class FlagOutcome:
    flag: Flag
    created: bool
    severity_raised: bool


def add_event(
    session: Session,
    flag: Flag,
    kind: str,
    *,
    now: datetime,
    actor_user_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> FlagEvent:
    event = FlagEvent(
        flag_id=flag.id, kind=kind, at=now, actor_user_id=actor_user_id, detail=detail
    )
    session.add(event)
    return event


# Built once: raising a flag is on the crisis and STOP paths of the webhook.
_UNRESOLVED_OF_PARTICIPANT = select(Flag).where(
    Flag.participant_id == bindparam("participant_id"),
    Flag.reason == bindparam("reason"),
    Flag.state != "resolved",
)
_UNRESOLVED_OF_SENDER = select(Flag).where(
    Flag.participant_id.is_(None),
    Flag.sender_address == bindparam("sender_address"),
    Flag.reason == bindparam("reason"),
    Flag.state != "resolved",
)


def _insert_flag(insert: Any, *, by_participant: bool) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on the partial unique index (one unresolved flag per
    participant, or unknown number, and reason): losing a race to another process neither
    raises nor spoils the caller's transaction; the winner's flag is read instead."""
    where = (
        "state <> 'resolved'"
        if by_participant
        else "state <> 'resolved' AND participant_id IS NULL"
    )
    return (
        insert(Flag)
        .values(
            participant_id=bindparam("participant_id"),
            sender_address=bindparam("sender_address"),
            trigger_message_id=bindparam("trigger_message_id"),
            reason=bindparam("reason"),
            severity=bindparam("severity"),
            state="open",
            opened_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
        .on_conflict_do_nothing(
            index_elements=["participant_id" if by_participant else "sender_address", "reason"],
            index_where=text(where),
        )
        .returning(Flag)
    )


_INSERT_FLAG = {
    (dialect, by_participant): _insert_flag(insert, by_participant=by_participant)
    for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
    for by_participant in (True, False)
}


def _find_unresolved(
    session: Session, reason: str, participant_id: int | None, sender_address: str | None
) -> Flag | None:
    if participant_id is not None:
        found = session.scalars(
            _UNRESOLVED_OF_PARTICIPANT, {"participant_id": participant_id, "reason": reason}
        )
    else:
        found = session.scalars(
            _UNRESOLVED_OF_SENDER, {"sender_address": sender_address, "reason": reason}
        )
    return found.first()


def _trigger(detail: dict[str, Any] | None) -> int | None:
    """The inbound text that raised a flag, when the raiser named one."""
    value = (detail or {}).get("inbound_message_id")
    return value if isinstance(value, int) else None


def raise_flag(
    session: Session,
    *,
    reason: str,
    now: datetime,
    severity: str | None = None,
    participant_id: int | None = None,
    sender_address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> FlagOutcome:
    """Open a flag, or, when one is already unresolved for this participant (or unknown number)
    and reason, count another occurrence and raise its severity if the new one is higher.
    The severity is the reason's, from the one table (bot.models.flags.severity_for), unless
    the caller passes one (an escalated level, or a seeded demo).

    A program-level reason (PROGRAM_REASONS: twilio_account, whatsapp_template_missing) has
    neither a participant nor a sender address: raise_program_flag keeps one unresolved.

    The partial unique index makes this safe with two workers at once: the loser's INSERT does
    nothing (ON CONFLICT DO NOTHING) and it updates the winner's flag instead.
    """
    program = participant_id is None and sender_address is None
    if reason in PROGRAM_REASONS:
        if not program:
            raise ValueError(f"{reason!r} is a program-level flag: no participant or sender")
        return raise_program_flag(session, reason=reason, now=now, detail=detail)
    if program:
        raise ValueError("a flag needs a participant or a sender address")
    if severity is None:
        severity = severity_for(reason)
    existing = _find_unresolved(session, reason, participant_id, sender_address)
    if existing is None:
        dialect = "postgresql" if is_postgresql(session) else "sqlite"
        flag = session.scalars(
            _INSERT_FLAG[(dialect, participant_id is not None)],
            {
                "participant_id": participant_id,
                "sender_address": sender_address if participant_id is None else None,
                "trigger_message_id": _trigger(detail),
                "reason": reason,
                "severity": severity,
                "now": now,
            },
        ).first()
        if flag is not None:
            add_event(
                session, flag, "opened", now=now, detail={"severity": severity, **(detail or {})}
            )
            return FlagOutcome(flag, created=True, severity_raised=False)
        existing = _find_unresolved(session, reason, participant_id, sender_address)
        if existing is None:  # resolved again in between: vanishingly rare, and worth a retry
            raise RuntimeError(f"flag {reason!r} neither inserted nor found")
    existing.occurrences += 1
    existing.updated_at = now
    if existing.trigger_message_id is None:
        existing.trigger_message_id = _trigger(detail)
    raised = SEVERITY_RANK[severity] > SEVERITY_RANK[existing.severity]
    if raised:
        add_event(
            session,
            existing,
            "severity_raised",
            now=now,
            detail={"from": existing.severity, "to": severity, **(detail or {})},
        )
        existing.severity = severity
    else:
        add_event(session, existing, "repeated", now=now, detail=detail)
    return FlagOutcome(existing, created=False, severity_raised=raised)


_PROGRAM_WHERE = "state <> 'resolved' AND participant_id IS NULL AND sender_address IS NULL"
_UNRESOLVED_OF_PROGRAM = select(Flag).where(
    Flag.participant_id.is_(None),
    Flag.sender_address.is_(None),
    Flag.reason == bindparam("reason"),
    Flag.state != "resolved",
)


def open_program_flag(session: Session, reason: str) -> Flag | None:
    """The unresolved program-level flag of this reason, if any."""
    flag: Flag | None = session.scalars(_UNRESOLVED_OF_PROGRAM, {"reason": reason}).first()
    return flag


def raise_program_flag(
    session: Session, *, reason: str, now: datetime, detail: dict[str, Any] | None = None
) -> FlagOutcome:
    """Open a flag about the program itself (bot.models.flags.PROGRAM_REASONS: participant
    and sender NULL), or count another occurrence of the unresolved one: one open per reason,
    decided by the database (its partial unique index), like raise_flag."""
    if reason not in PROGRAM_REASONS:
        raise ValueError(f"{reason!r} is not a program-level reason")
    existing = open_program_flag(session, reason)
    if existing is None:
        insert = pg_insert if is_postgresql(session) else sqlite_insert
        flag = session.scalars(
            insert(Flag)
            .values(
                reason=reason,
                severity=severity_for(reason),
                state="open",
                opened_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["reason"], index_where=text(_PROGRAM_WHERE))
            .returning(Flag)
        ).first()
        if flag is not None:
            add_event(session, flag, "opened", now=now, detail=detail)
            return FlagOutcome(flag, created=True, severity_raised=False)
        existing = open_program_flag(session, reason)
        if existing is None:
            raise RuntimeError(f"program flag {reason!r} neither inserted nor found")
    existing.occurrences += 1
    existing.updated_at = now
    add_event(session, existing, "repeated", now=now, detail=detail)
    return FlagOutcome(existing, created=False, severity_raised=False)


@dataclass(frozen=True)
class FlagRow:
    id: int
    participant: str | None
    phone_masked: str
    reason: str
    severity: str
    state: str
    opened_at: datetime
    coach: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "participant": self.participant,
            "phone_masked": self.phone_masked,
            "reason": self.reason,
            "severity": self.severity,
            "state": self.state,
            "opened_at": self.opened_at.isoformat().replace("+00:00", "Z"),
            "coach": self.coach,
        }


def list_flags(session: Session, *, include_resolved: bool = False) -> list[FlagRow]:
    """Flags urgent first, then high, normal, info, then oldest first."""
    query = (
        select(Flag, Participant.external_id, Participant.phone, User.email)
        .outerjoin(Participant, Flag.participant_id == Participant.id)
        .outerjoin(User, Participant.coach_id == User.id)
        .order_by(SEVERITY_ORDER, Flag.opened_at, Flag.id)
    )
    if not include_resolved:
        query = query.where(Flag.state != "resolved")
    rows = []
    for flag, external_id, phone, coach_email in session.execute(query):
        rows.append(
            FlagRow(
                id=flag.id,
                participant=external_id,
                phone_masked=mask_phone(phone or flag.sender_address),
                reason=flag.reason,
                severity=flag.severity,
                state=flag.state,
                opened_at=flag.opened_at,
                coach=coach_email,
            )
        )
    return rows


class FlagStateError(ValueError):
    """A lifecycle change that does not apply to the flag's current state."""


OUTCOMES = (
    "reached",
    "rescheduled",
    "referred",
    "no_action_needed",
    "could_not_reach",
    "other",
)


def acknowledge_flag(session: Session, flag: Flag, *, user_id: int, now: datetime) -> None:
    """open -> acknowledged. Acknowledging stops the escalation ladder."""
    if flag.state != "open":
        raise FlagStateError(f"flag {flag.id} is {flag.state}, not open")
    flag.state = "acknowledged"
    flag.acknowledged_at = now
    flag.acknowledged_by_id = user_id
    flag.next_page_at = None
    flag.updated_at = now
    add_event(session, flag, "acknowledged", now=now, actor_user_id=user_id)
    withdrawn = cancel_pending_pages(session, flag)
    if withdrawn:
        add_event(session, flag, "pages_withdrawn", now=now, detail={"count": withdrawn})


def cancel_pending_pages(session: Session, flag: Flag) -> int:
    """Withdraw pages for this flag that have not gone out yet (a high page held for the
    morning): once someone has the flag, nobody else should be woken for it."""
    return outbox_status.cancel_pending_pages(session, flag.id)


def resolve_flag(
    session: Session,
    flag: Flag,
    *,
    outcome: str,
    note: str | None,
    now: datetime,
    user_id: int | None,
    automatic: bool = False,
) -> None:
    """open|acknowledged -> resolved, with an outcome and a note; `automatic` when the system
    resolves it (a reply resolving `no_reply`)."""
    if flag.state == "resolved":
        raise FlagStateError(f"flag {flag.id} is already resolved")
    if outcome not in OUTCOMES:
        raise FlagStateError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    flag.state = "resolved"
    flag.resolved_at = now
    flag.resolved_by_id = user_id
    flag.outcome = outcome
    flag.note = note
    flag.next_page_at = None
    flag.updated_at = now
    cancel_pending_pages(session, flag)
    add_event(
        session,
        flag,
        "auto_resolved" if automatic else "resolved",
        now=now,
        actor_user_id=user_id,
        detail={"outcome": outcome},
    )
