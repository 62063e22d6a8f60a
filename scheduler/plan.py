"""plan(now): materialise planned contacts from the cadence, the windows and appointments.

The database is the schedule. A participant's whole programme (welcome, check-ins to day 90,
reminders for every upcoming appointment) is written as `PlannedContact` rows once, keyed by
(participant, rule, occurrence, version), and re-planned only when something it depends on
changes:

- `participant.plan_version` (bumped by imports: release date, zone; by opt-out/opt-in ...),
- `appointment.version` (bumped when the appointment moves),
- the digest of the `cadence`, `windows`, `reminders` and `quiet_hours` settings.

The version string encodes all three (`v3.1a2b3c4d` for welcome and check-ins,
`v3.a2.1a2b3c4d` for reminders), so a re-plan writes new keys; contacts of a superseded version
still `planned` become `cancelled` and are never sent. Work is found through partial indexes on
"planned_version differs from version", so a tick with nothing changed costs a few empty index
scans whatever the population.

Re-planning starts at the moment of the change (DESIGN.md, Precise rules, Re-planning), which the
change stored in `participant.replan_from` (bot/services/replan.py), not at the tick's `now`: a
slot between the change and the tick whose window is still open is planned (and sent by this
tick), one whose window closed is recorded `skipped`. Slots before the change, and check-ins
before the enrolment, are not planned; a slot that was already sent (queued or sent) under an
older version is never planned twice. Without a stored moment a re-plan starts at `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.models import Appointment, Participant, PlannedContact
from bot.services import contacts as planned_contacts
from scheduler.slots import (
    REMINDED_STATUSES,
    Rules,
    Slot,
    appointment_part,
    checkin_slots,
    load_rules,
    reminder_slots,
    welcome_slot,
)

# Contacts that went (or are going) out: never planned again under a newer version.
DONE_STATES = ("queued", "sent")
BATCH = 500


@dataclass
class PlanCounts:
    participants: int = 0
    appointments: int = 0
    created: int = 0
    cancelled: int = 0
    skipped: int = 0

    def add(self, other: PlanCounts) -> None:
        self.participants += other.participants
        self.appointments += other.appointments
        self.created += other.created
        self.cancelled += other.cancelled
        self.skipped += other.skipped


# --- writing -----------------------------------------------------------------------------


def _insert_slots(
    session: Session, participant_id: int, slots: Sequence[Slot], now: datetime
) -> int:
    if not slots:
        return 0
    rows: list[dict[str, Any]] = [
        {
            "participant_id": participant_id,
            "kind": s.kind,
            "rule": s.rule,
            "occurrence": s.occurrence,
            "version": s.version,
            "appointment_id": s.appointment_id,
            "template_key": s.template_key,
            "send_after": s.send_after,
            "not_after": s.not_after,
            "state": s.state,
            "state_reason": s.state_reason,
            "created_at": now,
            "decided_at": now if s.state != "planned" else None,
        }
        for s in slots
    ]
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Two planners at once write the same keys; the unique key keeps one, the other is a no-op.
    stmt = (
        insert_fn(PlannedContact)
        .on_conflict_do_nothing(index_elements=["participant_id", "rule", "occurrence", "version"])
        .returning(PlannedContact.id)
    )
    return len(session.execute(stmt, rows).all())


def _cancel(session: Session, ids: Iterable[int], reason: str, now: datetime) -> int:
    # Conditional: a contact the sender queued a moment ago is not cancelled from under it.
    return planned_contacts.cancel_planned(session, ids, reason, now)


def _reconcile(
    session: Session,
    participant: Participant,
    existing: Sequence[PlannedContact],
    desired: list[Slot],
    now: datetime,
    *,
    plan_from: datetime,
    cancel_reason: str = "superseded",
) -> PlanCounts:
    """Insert the desired slots not yet planned, cancel planned contacts no longer desired.

    `plan_from`: the first plan starts at the enrolment, a re-plan at the moment of its change
    (see `_plan_from`). A slot from then on whose window has closed by `now` is recorded
    `skipped` (what was missed stays on the record); one before it is not planned at all."""
    counts = PlanCounts()
    existing_keys = {(c.rule, c.occurrence, c.version) for c in existing}
    done_general = {(c.rule, c.occurrence) for c in existing if c.state in DONE_STATES}
    done_reminders = {
        (c.rule, c.occurrence, appointment_part(c.version))
        for c in existing
        if c.state in DONE_STATES and c.kind == "reminder"
    }
    desired_keys = {s.key for s in desired}
    new: list[Slot] = []
    for slot in desired:
        if slot.key in existing_keys:
            continue
        if slot.kind == "reminder":
            if (slot.rule, slot.occurrence, appointment_part(slot.version)) in done_reminders:
                continue
        elif (slot.rule, slot.occurrence) in done_general:
            continue
        if slot.not_after <= now:
            if slot.send_after < plan_from:
                continue  # closed before the change: the earlier plan's record stands
            # Due after the change (or the enrolment) but the tick came too late: the record
            # says what was missed; never sent late.
            slot = Slot(**{**slot.__dict__, "state": "skipped", "state_reason": "window_closed"})
            counts.skipped += 1
        elif slot.kind == "checkin" and slot.send_after < plan_from:
            continue  # a check-in before the change (or the enrolment) is not planned
        new.append(slot)
    counts.created = _insert_slots(session, participant.id, new, now)
    stale = [
        c.id
        for c in existing
        if c.state == "planned" and (c.rule, c.occurrence, c.version) not in desired_keys
    ]
    counts.cancelled = _cancel(session, stale, cancel_reason, now)
    return counts


def _plan_from(participant: Participant, now: datetime) -> datetime:
    """Where this (re-)plan starts: the moment of the change that asked for it
    (`replan_from`, Precise rules, Re-planning), else the enrolment for a first plan, else
    `now`; never after `now` (a clock ahead of the worker's must not drop future slots) and
    never before the enrolment (Enrolment: check-ins before the import are never planned)."""
    if participant.replan_from is not None:
        start = min(participant.replan_from, now)
    elif participant.planned_version is None:
        start = participant.enrolled_at
    else:
        start = now
    return max(start, participant.enrolled_at)


def _desired_for_participant(
    session: Session,
    participant: Participant,
    rules: Rules,
    now: datetime,
    existing: Sequence[PlannedContact],
    plan_from: datetime,
) -> list[Slot]:
    if participant.status != "active":
        return []
    desired: list[Slot] = []
    welcome = welcome_slot(participant, rules)
    desired.append(welcome)
    # Enrolment: check-in slots before the import are never planned; the welcome is first.
    desired.extend(s for s in checkin_slots(participant, rules) if s.send_after >= plan_from)
    # Reminders passed before a first plan are "imported late" (the latest goes at once); a
    # re-plan keeps those after its change, whose windows run to shortly before the appointment.
    reminders_from = plan_from if participant.replan_from is not None else now
    appointments = session.scalars(
        select(Appointment).where(
            Appointment.participant_id == participant.id,
            Appointment.starts_at > now,
            Appointment.status.in_(REMINDED_STATUSES),
        )
    ).all()
    for appointment in appointments:
        desired.extend(
            reminder_slots(
                participant,
                appointment,
                rules,
                now,
                already_sent=_reminder_sent(existing, appointment),
                since=reminders_from,
            )
        )
    return desired


def _reminder_sent(existing: Sequence[PlannedContact], appointment: Appointment) -> bool:
    part = f"a{appointment.version}"
    return any(
        c.appointment_id == appointment.id
        and c.state in DONE_STATES
        and appointment_part(c.version) == part
        for c in existing
    )


def plan_participant(
    session: Session, participant: Participant, rules: Rules, now: datetime
) -> PlanCounts:
    """(Re-)plan everything for one participant: welcome, check-ins, reminders."""
    existing = session.scalars(
        select(PlannedContact).where(PlannedContact.participant_id == participant.id)
    ).all()
    plan_from = _plan_from(participant, now)
    desired = _desired_for_participant(session, participant, rules, now, existing, plan_from)
    reason = "superseded" if participant.status == "active" else f"participant_{participant.status}"
    counts = _reconcile(
        session, participant, existing, desired, now, plan_from=plan_from, cancel_reason=reason
    )
    participant.planned_version = participant.plan_version
    participant.planned_settings = rules.digest
    session.execute(
        update(Appointment)
        .where(Appointment.participant_id == participant.id)
        .values(planned_version=Appointment.version)
        .execution_options(synchronize_session="fetch")
    )
    counts.participants = 1
    return counts


def clear_replan_marks(session: Session, participant_ids: Sequence[int]) -> None:
    """After planning these people: their `replan_from` has been used. Flushes first, and
    clears only where no newer change came meanwhile (a change bumps plan_version and keeps
    its moment for the next tick, which re-plans that person again). One statement."""
    if not participant_ids:
        return
    session.flush()
    session.execute(
        update(Participant)
        .where(
            Participant.id.in_(participant_ids),
            Participant.replan_from.is_not(None),
            Participant.planned_version == Participant.plan_version,
        )
        .values(replan_from=None)
        .execution_options(synchronize_session="evaluate")
    )


def plan_appointment(
    session: Session, appointment: Appointment, rules: Rules, now: datetime
) -> PlanCounts:
    """Re-plan the reminders of one appointment that moved (or was added, or cancelled)."""
    participant = session.get(Participant, appointment.participant_id)
    assert participant is not None
    existing = session.scalars(
        select(PlannedContact).where(PlannedContact.appointment_id == appointment.id)
    ).all()
    desired: list[Slot] = []
    if participant.status == "active":
        desired = reminder_slots(
            participant,
            appointment,
            rules,
            now,
            already_sent=_reminder_sent(existing, appointment),
        )
    counts = _reconcile(session, participant, existing, desired, now, plan_from=now)
    appointment.planned_version = appointment.version
    counts.appointments = 1
    return counts


def plan_step(
    session: Session, now: datetime, rules: Rules, limit: int = BATCH
) -> tuple[PlanCounts, bool]:
    """Plan up to `limit` participants and appointments that need it; returns (counts, more)."""
    counts = PlanCounts()
    needs_plan = or_(
        Participant.planned_version.is_(None),
        Participant.planned_version != Participant.plan_version,
    )
    ids = list(
        session.scalars(
            select(Participant.id).where(needs_plan).order_by(Participant.id).limit(limit)
        )
    )
    if len(ids) < limit:
        # The settings changed since these were planned: everyone is re-planned, once.
        settings_changed = or_(
            Participant.planned_settings < rules.digest,
            Participant.planned_settings > rules.digest,
        )
        ids += list(
            session.scalars(
                select(Participant.id)
                .where(settings_changed)
                .order_by(Participant.id)
                .limit(limit - len(ids))
            )
        )
    marked: list[int] = []
    for participant in session.scalars(
        select(Participant).where(Participant.id.in_(ids)).order_by(Participant.id)
    ):
        if participant.replan_from is not None:
            marked.append(participant.id)
        counts.add(plan_participant(session, participant, rules, now))
    clear_replan_marks(session, marked)
    room = limit - len(ids)
    appointment_ids: list[int] = []
    if room > 0:
        appointment_needs_plan = or_(
            Appointment.planned_version.is_(None),
            Appointment.planned_version != Appointment.version,
        )
        appointment_ids = list(
            session.scalars(
                select(Appointment.id)
                .where(appointment_needs_plan)
                .order_by(Appointment.id)
                .limit(room)
            )
        )
        for appointment in session.scalars(
            select(Appointment).where(Appointment.id.in_(appointment_ids))
        ):
            counts.add(plan_appointment(session, appointment, rules, now))
    session.flush()
    more = len(ids) + len(appointment_ids) >= limit
    return counts, more


def plan(session: Session, now: datetime) -> PlanCounts:
    """Plan everything that needs it, in batches (flushed, not committed: the caller commits)."""
    rules = load_rules(session)
    total = PlanCounts()
    while True:
        counts, more = plan_step(session, now, rules)
        total.add(counts)
        if not more:
            return total


__all__ = [
    "PlanCounts",
    "clear_replan_marks",
    "plan",
    "plan_appointment",
    "plan_participant",
    "plan_step",
]
