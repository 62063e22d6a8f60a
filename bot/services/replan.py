"""Asking for a participant's plan to be made again (DESIGN.md, Precise rules, Re-planning).

A change that re-plans someone (opt-in after STOP, resume after a pause or a crisis, a new
release date, zone or cadence) plans from the moment of the change, not from the next tick.
The planner runs in the worker's tick (scheduler/plan.py); a change made anywhere else asks for
it here, lazily and cheaply: `plan_version` is bumped (the planner's partial-index work list)
and `replan_from` keeps the moment of the change. The next tick plans that person from it: a
slot after the change whose window is still open when the tick runs is sent, one whose window
has closed is recorded `skipped`, never sent late. Check-ins before the enrolment are never
planned, and an occurrence already queued or sent under an earlier plan is never planned
again, whatever `replan_from` says.

Services never import the scheduler: this module is what they call.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, literal, update
from sqlalchemy.orm import Session

from bot.models import Participant


def request_replan(
    session: Session, participant: Participant | int, now: datetime, *, restart: bool = False
) -> Participant:
    """Ask for `participant` (object or id) to be re-planned from `now`: the function a change
    calls (a resolved crisis flag, an opt-in, a resume, a new release date or zone). See
    `mark_for_replan` for `restart`. Written by the caller's commit. Raises LookupError for an
    unknown id."""
    if isinstance(participant, int):
        found = session.get(Participant, participant)
        if found is None:
            raise LookupError(f"no participant with id {participant}")
        participant = found
    mark_for_replan(participant, now, restart=restart)
    return participant


def mark_for_replan(participant: Participant, now: datetime, *, restart: bool = False) -> None:
    """`request_replan` on a loaded participant, for callers without a session at hand.

    Two changes before the next tick plan from the earlier one, unless this change `restart`s
    contact (opt-in after STOP, resume after a pause or a crisis): nothing that fell before a
    restart is planned, since the person was not to be texted then."""
    pending = participant.replan_from
    if restart or pending is None or now < pending:
        participant.replan_from = now
    participant.plan_version += 1
    participant.updated_at = now


def request_replan_of_active(session: Session, now: datetime) -> int:
    """Ask for every active participant to be re-planned from `now` (a program setting the
    plan depends on changed); one UPDATE. Returns how many were asked."""
    pending = Participant.replan_from
    at = literal(now, Participant.replan_from.type)
    result = session.execute(
        update(Participant)
        .where(Participant.status == "active")
        .values(
            plan_version=Participant.plan_version + 1,
            replan_from=case((pending.is_(None), at), (pending > at, at), else_=pending),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["mark_for_replan", "request_replan", "request_replan_of_active"]
