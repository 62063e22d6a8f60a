"""Small helpers shared by the scheduler tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import PlannedContact


def contacts(
    session: Session, participant_id: int, state: str | None = None
) -> list[PlannedContact]:
    query = select(PlannedContact).where(PlannedContact.participant_id == participant_id)
    if state is not None:
        query = query.where(PlannedContact.state == state)
    return list(session.scalars(query.order_by(PlannedContact.send_after, PlannedContact.id)))


def by_occurrence(
    session: Session, participant_id: int, state: str = "planned"
) -> dict[str, PlannedContact]:
    return {
        (c.occurrence if c.kind != "reminder" else c.rule): c
        for c in contacts(session, participant_id, state)
    }


def local(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
