"""Status changes made outside a send: a status callback moves a row forward, an opt-out or
an acknowledged flag cancels what has not gone yet, the demo records a past conversation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.models import OutboundMessage


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def advance(
    session: Session,
    message_id: int,
    status: str,
    *,
    behind: Sequence[str],
    now: datetime,
    error_code: int | None = None,
    error_message: str | None = None,
) -> bool:
    """Move a row to `status` if it is in one of the `behind` statuses (a status callback:
    statuses only move forward). Returns whether it moved."""
    values: dict[str, object] = {"status": status, "status_updated_at": now}
    if error_code is not None:
        values["error_code"] = error_code
        if error_message:
            values["error_message"] = error_message[:255]
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message_id, OutboundMessage.status.in_(behind))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(_count(result))


def note_error_code(session: Session, message_id: int, code: int) -> bool:
    """Keep an error code a late callback carries, if the row has none. Returns whether kept."""
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message_id, OutboundMessage.error_code.is_(None))
        .values(error_code=code)
        .execution_options(synchronize_session=False)
    )
    return bool(_count(result))


def cancel_pending_for_participant(
    session: Session, participant_id: int, now: datetime, reason: str = "opted out"
) -> int:
    """An opt-out (or a closed enrolment, with its `reason`): the person's rows not yet claimed
    are cancelled. Rows a scheduler tick holds locked are skipped, not waited for (see
    bot.services.consent): the claim and the last look cancel those."""
    unlocked = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.participant_id == participant_id,
            OutboundMessage.status == "pending",
        )
        .with_for_update(skip_locked=True)
    )
    return _count(
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(unlocked.scalar_subquery()))
            .values(status="cancelled", error_message=reason, status_updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )


def readdress_pending(session: Session, participant_id: int, address: str) -> int:
    """A participant's number changed: their rows not yet claimed go to the new `address`
    (a row already claimed leaves with the address it was claimed with). Returns how many."""
    return _count(
        session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.participant_id == participant_id,
                OutboundMessage.status == "pending",
                OutboundMessage.to_address != address,
            )
            .values(to_address=address)
            .execution_options(synchronize_session=False)
        )
    )


def cancel_pending_pages(session: Session, flag_id: int) -> int:
    """Pages for this flag that have not gone out yet (a high page held for the morning) are
    withdrawn. Returns how many."""
    return _count(
        session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.purpose == "page",
                OutboundMessage.status == "pending",
                OutboundMessage.idempotency_key.like(f"page:{flag_id}:%"),
            )
            .values(status="cancelled")
            .execution_options(synchronize_session=False)
        )
    )


def record_past(session: Session, **values: Any) -> OutboundMessage:
    """A message that went out before this database recorded it, with its final status (the
    demo's seeded history); never sent by a worker."""
    assert values.get("status") not in ("pending", "sending"), "a past message is not due"
    message = OutboundMessage(**values)
    session.add(message)
    return message
