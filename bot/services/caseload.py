"""Caseload isolation, in SQL.

A coach sees the participants assigned to them and those assigned to any coach they cover (a
user whose `covering_user_id` is this coach); coordinators and admins see everyone. Every
dashboard list, search, detail, reply and export adds `caseload_clause(viewer)` to its query,
so a participant outside the caseload is never loaded at all, and the view answers 404 as if
they did not exist.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, Select, or_, select, true
from sqlalchemy.orm import Session

from bot.models import Flag, Participant, User

SEES_EVERYONE = ("coordinator", "admin")


class Viewer(Protocol):
    """Anything with a user id and a role: the ORM `User`, or the dashboard's logged-in user."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...


def sees_everyone(viewer: Viewer) -> bool:
    return viewer.role in SEES_EVERYONE


def covered_coach_ids(viewer: Viewer) -> Select[int]:
    """The coaches this viewer covers for (a subquery)."""
    return select(User.id).where(User.covering_user_id == viewer.id)


def caseload_clause(viewer: Viewer, session: Session | None = None) -> ColumnElement[bool]:
    """WHERE clause on `Participant` limiting rows to the viewer's caseload.

    Given a session, the few coaches the viewer covers are looked up first and the clause is
    `coach_id IN (literal ids)`, which PostgreSQL answers from the coach_id index; without
    one it is a subquery (same rows, but the planner may scan every participant).
    """
    if sees_everyone(viewer):
        return true()
    if session is not None:
        ids = [viewer.id, *session.scalars(covered_coach_ids(viewer))]
        return Participant.coach_id.in_(ids)
    return or_(
        Participant.coach_id == viewer.id,
        Participant.coach_id.in_(covered_coach_ids(viewer)),
    )


def flag_clause(viewer: Viewer, session: Session | None = None) -> ColumnElement[bool]:
    """WHERE clause on `Flag` (joined to `Participant` with an outer join).

    Flags about unknown senders have no participant and so no coach: only coordinators and
    admins see them.
    """
    if sees_everyone(viewer):
        return true()
    return Flag.participant_id.is_not(None) & caseload_clause(viewer, session)


def visible_participants(viewer: Viewer, session: Session | None = None) -> Select[Participant]:
    return select(Participant).where(caseload_clause(viewer, session))


def get_visible_participant(
    session: Session, viewer: Viewer, participant_id: int
) -> Participant | None:
    """The participant when they are in the viewer's caseload, otherwise None."""
    return session.scalars(
        visible_participants(viewer, session).where(Participant.id == participant_id)
    ).first()


def get_visible_flag(session: Session, viewer: Viewer, flag_id: int) -> Flag | None:
    """The flag when its participant is in the viewer's caseload, otherwise None."""
    return session.scalars(
        select(Flag)
        .outerjoin(Participant, Flag.participant_id == Participant.id)
        .where(Flag.id == flag_id, flag_clause(viewer, session))
    ).first()
