"""Adding to the outbox: one message at a time (`enqueue`: replies, pages, staff texts) or a
batch of due planned contacts at once (`insert_batch`, scheduler/enqueue.py), each exactly once
per idempotency key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.bulk import insert_returning_ignoring_conflicts
from bot.db import is_postgresql
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
    already_sent_at: datetime | None = None,
) -> Enqueued:
    """Add a message to the outbox exactly once per key.

    A second call with the same key returns the existing row: the key is what makes "plan twice"
    or "two workers at once" harmless. One INSERT … ON CONFLICT DO NOTHING decides, so losing a
    race to another process neither raises nor spoils the caller's transaction.

    `already_sent_at` records a message that went out another way (a reply given in the
    webhook's TwiML): it is stored as `sent` and no worker will send it.
    """
    values: dict[str, Any] = {
        "idempotency_key": idempotency_key,
        "purpose": purpose,
        "channel": channel,
        "to_address": to_address,
        "body": body,
        "segments": max(count_segments(body).segments, 1),
        "status": "pending" if already_sent_at is None else "sent",
        "attempts": 0,
        "send_after": send_after or now,
        "not_after": not_after,
        "sent_at": already_sent_at,
        "status_updated_at": already_sent_at,
        "participant_id": participant_id,
        "user_id": user_id,
        "planned_contact_id": planned_contact_id,
        "created_by_id": created_by_id,
        "ignore_quiet_hours": ignore_quiet_hours,
        "created_at": now,
    }
    insert = pg_insert if is_postgresql(session) else sqlite_insert
    created = session.scalars(
        insert(OutboundMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboundMessage)
    ).first()
    if created is not None:
        return Enqueued(created, created=True)
    existing = session.scalars(
        select(OutboundMessage).where(OutboundMessage.idempotency_key == idempotency_key)
    ).one()
    return Enqueued(existing, created=False)


def insert_batch(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """Insert outbox rows for planned contacts, each `pending`, or `sending` when the caller
    claims it in the same transaction (`claimed_by`, `claimed_at`, `attempts` 1), in one
    statement. The key makes a second tick's insert of the same contact a no-op (no target:
    the unique planned_contact_id says the same thing). Returns (id, planned_contact_id,
    status) of the rows really inserted: only those are the caller's to send."""
    inserted = insert_returning_ignoring_conflicts(
        session,
        cast(Table, OutboundMessage.__table__),
        rows,
        ("id", "planned_contact_id", "status"),
    )
    return cast(list[tuple[int, int, str]], inserted)
