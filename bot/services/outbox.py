"""The outbox: every outbound text is a row here, with a unique idempotency key, before any
network call. Senders claim rows (scheduler/send.py); everyone else only enqueues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import OutboundMessage
from messages.segments import count_segments


@dataclass(frozen=True)
class Enqueued:
    message: OutboundMessage
    # False when a row with the same idempotency key already existed (nothing new was queued).
    created: bool


def enqueue(
    session: Session,
    *,
    idempotency_key: str,
    purpose: str,
    channel: str,
    to_address: str,
    body: str,
    now: datetime,
    send_after: datetime | None = None,
    not_after: datetime | None = None,
    participant_id: int | None = None,
    user_id: int | None = None,
    planned_contact_id: int | None = None,
    created_by_id: int | None = None,
    ignore_quiet_hours: bool = False,
) -> Enqueued:
    """Add a message to the outbox exactly once per key.

    A second call with the same key returns the existing row: the key is what makes "plan twice"
    or "two workers at once" harmless. The insert runs in a savepoint so that losing a race to
    another process does not roll back the caller's transaction.
    """
    existing = session.scalars(
        select(OutboundMessage).where(OutboundMessage.idempotency_key == idempotency_key)
    ).first()
    if existing is not None:
        return Enqueued(existing, created=False)
    message = OutboundMessage(
        idempotency_key=idempotency_key,
        purpose=purpose,
        channel=channel,
        to_address=to_address,
        body=body,
        segments=max(count_segments(body).segments, 1),
        status="pending",
        attempts=0,
        send_after=send_after or now,
        not_after=not_after,
        participant_id=participant_id,
        user_id=user_id,
        planned_contact_id=planned_contact_id,
        created_by_id=created_by_id,
        ignore_quiet_hours=ignore_quiet_hours,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:
        winner = session.scalars(
            select(OutboundMessage).where(OutboundMessage.idempotency_key == idempotency_key)
        ).first()
        if winner is None:
            raise
        return Enqueued(winner, created=False)
    return Enqueued(message, created=True)
