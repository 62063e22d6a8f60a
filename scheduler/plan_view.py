"""What `checkin plan ID` shows (bot/cli.py prints it): a participant's upcoming contacts, planned
first if their plan is stale, so the answer is the real schedule even before the worker ran."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.models import Participant, PlannedContact
from scheduler.plan import clear_replan_marks, plan_participant
from scheduler.slots import load_rules


@dataclass
class PlanRow:
    kind: str
    rule: str
    send_at_local: datetime
    send_at_utc: datetime
    not_after_utc: datetime
    state: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "send_at_local": self.send_at_local.isoformat(),
            "send_at_utc": _utc(self.send_at_utc),
            "not_after_utc": _utc(self.not_after_utc),
            "state": self.state,
        }


def _utc(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def upcoming_contacts(session: Session, participant: Participant, now: datetime) -> list[PlanRow]:
    """Contacts whose window has not closed, and everything still planned, in time order."""
    zone = ZoneInfo(participant.timezone)
    contacts = session.scalars(
        select(PlannedContact)
        .where(
            PlannedContact.participant_id == participant.id,
            PlannedContact.state != "cancelled",
            or_(PlannedContact.state == "planned", PlannedContact.not_after >= now),
        )
        .order_by(PlannedContact.send_after, PlannedContact.id)
    ).all()
    return [
        PlanRow(
            kind=c.kind,
            rule=c.rule if c.kind != "checkin" else f"checkin.{c.occurrence}",
            send_at_local=c.send_after.astimezone(zone),
            send_at_utc=c.send_after,
            not_after_utc=c.not_after,
            state=c.state,
        )
        for c in contacts
    ]


def current_plan(session: Session, participant: Participant, now: datetime) -> list[PlanRow]:
    """The participant's upcoming contacts, planned first if their plan is stale: what the next
    tick would do anyway (idempotent), so the answer is the real schedule even before the
    worker ran. (`checkin plan` prints it: bot/cli.py.)"""
    rules = load_rules(session)
    stale = participant.planned_version != participant.plan_version or (
        participant.planned_settings != rules.digest
    )
    if stale:
        plan_participant(session, participant, rules, now)
        clear_replan_marks(session, [participant.id])
        session.flush()
    return upcoming_contacts(session, participant, now)


__all__ = ["PlanRow", "current_plan", "upcoming_contacts"]
