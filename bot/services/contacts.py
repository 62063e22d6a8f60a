"""Planned contacts' states: every change after the planner inserts a contact goes through here.

    planned --enqueue--> queued --sent--> sent
       |                   |
       +-------------------+--> cancelled (opt-out, re-plan, settings, appointment) | skipped

The planner (scheduler/plan.py) creates contacts (`planned`, or `skipped` when first planned
after their window) and cancels the ones a re-plan no longer wants; the sender
(scheduler/enqueue.py, bot/services/outbox) queues, sends, skips and cancels them; an opt-out
(bot.services.consent) and a settings change cancel what is still to come. Every change is
conditional on the state it leaves, so a contact the sender queued a moment ago is never
cancelled from under it, and a decided contact is never decided again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.bulk import in_ids
from bot.models import PlannedContact

# States a contact may still be decided from.
UNDECIDED = ("planned", "queued")


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def decide(
    session: Session, contact_ids: Iterable[int], state: str, reason: str, now: datetime
) -> int:
    """Contacts still planned or queued become `state` ("cancelled" or "skipped") for `reason`."""
    ids = list(contact_ids)
    if not ids:
        return 0
    return _count(
        session.execute(
            update(PlannedContact)
            .where(PlannedContact.id.in_(ids), PlannedContact.state.in_(UNDECIDED))
            .values(state=state, state_reason=reason, decided_at=now)
            .execution_options(synchronize_session=False)
        )
    )


def defer(session: Session, moves: Sequence[dict[str, Any]]) -> None:
    """Planned contacts wait: each of `moves` is {"id": ..., "send_after": ...}."""
    if moves:
        session.execute(update(PlannedContact), list(moves))


def mark_queued(session: Session, contact_ids: Sequence[int], now: datetime) -> None:
    """Planned contacts that now have their outbox row."""
    if contact_ids:
        session.execute(
            update(PlannedContact)
            .where(
                in_ids(session, PlannedContact.id, contact_ids), PlannedContact.state == "planned"
            )
            .values(state="queued", decided_at=now)
            .execution_options(synchronize_session=False)
        )


def mark_sent(session: Session, contact_ids: Sequence[int], now: datetime) -> None:
    """Queued contacts whose text the provider accepted."""
    if contact_ids:
        session.execute(
            update(PlannedContact)
            .where(
                in_ids(session, PlannedContact.id, contact_ids), PlannedContact.state == "queued"
            )
            .values(state="sent", decided_at=now)
            .execution_options(synchronize_session=False)
        )


def record_past_send(session: Session, contact: PlannedContact, at: datetime) -> None:
    """A contact whose text went out before this database recorded it (the demo's seeded
    history), whatever the planner made of it."""
    contact.state = "sent"
    contact.state_reason = None
    contact.decided_at = at


def cancel_planned(session: Session, contact_ids: Iterable[int], reason: str, now: datetime) -> int:
    """The planner's cancel: only contacts still `planned` (one the sender queued a moment ago
    is not cancelled from under it). Loaded objects are refreshed. Returns how many."""
    ids = list(contact_ids)
    if not ids:
        return 0
    return _count(
        session.execute(
            update(PlannedContact)
            .where(PlannedContact.id.in_(ids), PlannedContact.state == "planned")
            .values(state="cancelled", state_reason=reason, decided_at=now)
            .execution_options(synchronize_session="fetch")
        )
    )


def cancel_future(session: Session, now: datetime, reason: str) -> int:
    """Every contact still planned for after `now` (settings changed: they are planned again)."""
    return _count(
        session.execute(
            update(PlannedContact)
            .where(PlannedContact.state == "planned", PlannedContact.send_after > now)
            .values(state="cancelled", state_reason=reason, decided_at=now)
            .execution_options(synchronize_session=False)
        )
    )


def cancel_for_participant(
    session: Session, participant_id: int, reason: str, now: datetime
) -> int:
    """A person's undecided contacts are cancelled (an opt-out). Rows a scheduler tick holds
    locked right now are skipped, not waited for (PostgreSQL): see bot.services.consent
    opt_out; the claim and the last look cancel those."""
    unlocked = (
        select(PlannedContact.id)
        .where(
            PlannedContact.participant_id == participant_id,
            PlannedContact.state.in_(UNDECIDED),
        )
        .with_for_update(skip_locked=True)
    )
    return _count(
        session.execute(
            update(PlannedContact)
            .where(PlannedContact.id.in_(unlocked.scalar_subquery()))
            .values(state="cancelled", state_reason=reason, decided_at=now)
            .execution_options(synchronize_session=False)
        )
    )
