"""The audit log: one row per view of a participant and per action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.models import AuditLog


def record(
    session: Session,
    *,
    now: datetime,
    action: str,
    actor: str,
    user_id: int | None = None,
    participant_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the session (the caller commits it with the action it records)."""
    row = AuditLog(
        at=now,
        actor=actor,
        action=action,
        user_id=user_id,
        participant_id=participant_id,
        detail=detail,
    )
    session.add(row)
    return row
