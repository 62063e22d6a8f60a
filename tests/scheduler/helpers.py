"""Small helpers shared by the scheduler tests."""

from __future__ import annotations

from collections.abc import Sequence
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


def max_in_window(stamps: Sequence[float], width: float = 1.0) -> int:
    """Most stamps in any [t, t + width): the maximum is reached with t at a stamp. Used by
    tests/scheduler/test_rate.py and bench/send_rate.py to hold the sender to its rate."""
    ordered = sorted(stamps)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + width:
            j += 1
        best = max(best, j - i)
    return best
