"""Coordinators and admins run enrolment from the dashboard: add and edit a participant, move
people to another coach, close an enrolment with a reason and reopen it. Without Flask.

- **One validation.** The form's values are checked by the importer's own row check
  (bot.services.importer.check_participant_values), so a coordinator reads the same
  `column: why` messages a CSV import gives, each shown next to its field. Uniqueness of the
  phone and the program ID is checked here, in the importer's words.
- **Re-planned at once.** A new participant, a changed release date, zone, phone or channel,
  and a reopening ask for a new plan from the moment of the change and, with `planner`
  (scheduler.plan.plan, handed over by the web app's factory: services never import the
  scheduler), plan it at once, so the page shows the new plan.
- **Closing stops every text** through the modules that own them: planned contacts
  (bot.services.contacts), pending outbox rows (bot.services.outbox.status) and open reply
  expectations (bot.services.expectations). The history stays; the sender cancels anything a
  tick had claimed (bot.services.sendability: a closed person gets nothing but a crisis reply).
- **Audited.** Every change writes an audit row in the caller's transaction; phone numbers and
  names are never written to it (it says "changed"), and an earlier number is kept in
  `participant_phone_history`.

The caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import AuditLog, Participant, PhoneChange, User
from bot.services import consent, expectations, replan
from bot.services import contacts as planned_contacts
from bot.services.audit import record
from bot.services.importer import check_participant_values
from bot.services.outbox import status as outbox_status
from bot.services.settings_editing import Planner

# The form's fields, in the order the form shows them. Another field (consent, say) is added
# here, in `form_values` and in `check_form`; the template loops over what it is given.
FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "channel",
    "timezone",
    "language",
    "release_date",
    "coach_id",
    "external_id",
    "consent_source",
    "consent_date",
)
# Consent evidence (issue 19.3): empty on the edit form (what is on file is shown next to it);
# a source filled in adds to the consent history, it never replaces or removes anything.
CONSENT_FIELDS = ("consent_source", "consent_date")
NO_EVIDENCE = consent.Evidence()
MAX_LAST_NAME = 80
MAX_CLOSE_REASON = 200
# Fields whose change re-plans the person (when and where their texts go).
PLAN_FIELDS = ("release_date", "timezone", "phone", "channel")
# Fields the audit log names without their values (they identify the person).
PRIVATE_FIELDS = ("first_name", "last_name", "phone")
DASHBOARD = "dashboard"


class ParticipantInvalid(ValueError):
    """The form has mistakes: `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


class ChangeRefused(ValueError):
    """The change cannot be made as asked (closing someone already closed, ...); the message is
    shown as it is."""


@dataclass(frozen=True)
class ParticipantValues:
    """A participant's checked values, ready to store."""

    external_id: str
    first_name: str
    last_name: str | None
    phone: str
    channel: str
    timezone: str
    language: str
    release_date: date
    coach_id: int | None
    consent: consent.Evidence = NO_EVIDENCE


def form_values(participant: Participant) -> dict[str, str]:
    """A participant's values as the form shows them."""
    return {
        "first_name": participant.first_name,
        "last_name": participant.last_name or "",
        "phone": participant.phone,
        "channel": participant.channel,
        "timezone": participant.timezone,
        "language": participant.language,
        "release_date": participant.release_date.isoformat(),
        "coach_id": str(participant.coach_id or ""),
        "external_id": participant.external_id,
        "consent_source": "",
        "consent_date": "",
    }


def coach_choices(session: Session) -> list[User]:
    """Active staff a participant may be assigned to: coaches first, then by name."""
    return list(
        session.scalars(
            select(User)
            .where(User.active.is_(True))
            .order_by((User.role != "coach"), User.name, User.id)
        )
    )


def next_external_id(session: Session) -> str:
    """A free program ID like `P-00042` for someone added without one."""
    n = (session.scalar(select(func.max(Participant.id))) or 0) + 1
    while True:
        candidate = f"P-{n:05d}"
        if (
            session.scalar(select(Participant.id).where(Participant.external_id == candidate))
            is None
        ):
            return candidate
        n += 1


def check_form(
    session: Session,
    form: Mapping[str, str],
    *,
    default_timezone: str,
    participant: Participant | None = None,
    now: datetime | None = None,
) -> ParticipantValues:
    """The form's values checked as the importer checks a row, plus what only the database
    can say (the number or program ID already taken, the coach). `participant` is the person
    being edited (None: a new one). Raises ParticipantInvalid with one message per field."""
    raw = {name: str(form.get(name, "")).strip() for name in FIELDS}
    errors: dict[str, str] = {}
    external_id = raw["external_id"]
    if not external_id:
        external_id = participant.external_id if participant else next_external_id(session)
    values = {**raw, "external_id": external_id}
    values.pop("coach_id")
    values.pop("last_name")
    checked, problems = check_participant_values(
        values, default_timezone=default_timezone, coaches={}, now=now
    )
    for problem in problems:
        name, _, why = problem.partition(": ")
        errors.setdefault(name, why)
    last_name = raw["last_name"] or None
    if last_name is not None and len(last_name) > MAX_LAST_NAME:
        errors["last_name"] = f"is longer than {MAX_LAST_NAME} characters"
    coach_id = _coach(session, raw["coach_id"], errors)
    others = Participant.id != participant.id if participant is not None else None
    if checked is not None:
        owner = session.scalar(
            select(Participant.external_id).where(
                Participant.phone == checked.phone, *([others] if others is not None else [])
            )
        )
        if owner is not None:
            errors["phone"] = f"the number already belongs to participant {owner!r}"
        taken = session.scalar(
            select(Participant.id).where(
                Participant.external_id == external_id,
                *([others] if others is not None else []),
            )
        )
        if taken is not None:
            errors["external_id"] = f"{external_id!r} already belongs to another participant"
    if errors or checked is None:
        raise ParticipantInvalid(errors)
    return ParticipantValues(
        external_id=checked.external_id,
        first_name=checked.first_name,
        last_name=last_name,
        phone=checked.phone,
        channel=checked.channel,
        timezone=checked.timezone,
        language=checked.language,
        release_date=checked.release_date,
        coach_id=coach_id,
        consent=checked.evidence,
    )


def _coach(session: Session, raw: str, errors: dict[str, str]) -> int | None:
    if not raw:
        return None
    user = session.get(User, int(raw)) if raw.isdigit() else None
    if user is None or not user.active:
        errors["coach_id"] = "choose an active staff member from the list"
        return None
    return user.id


def request_replan(
    session: Session, participant: Participant, now: datetime, planner: Planner | None
) -> None:
    """Plan this person again from `now`: at once with `planner`, else on the next tick."""
    # From the moment of the change (DESIGN.md "Re-planning"), even if the tick plans it later.
    replan.request_replan(session, participant, now)
    session.flush()
    if planner is not None:
        planner(session, now)
        session.flush()


def create_participant(
    session: Session,
    values: ParticipantValues,
    *,
    now: datetime,
    user_id: int | None,
    planner: Planner | None = None,
) -> Participant:
    """Enrol one person: consent recorded with its evidence, or as asserted by the staff
    member when no source is given; audited, and planned at once (the welcome shows on their
    page)."""
    participant = Participant(
        external_id=values.external_id,
        first_name=values.first_name,
        last_name=values.last_name,
        phone=values.phone,
        channel=values.channel,
        timezone=values.timezone,
        language=values.language,
        release_date=values.release_date,
        coach_id=values.coach_id,
        status="active",
        consent_at=now,
        consent_method=DASHBOARD,
        consent_recorded_by=DASHBOARD,
        enrolled_at=now,
        plan_version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(participant)
    session.flush()
    consent.record_consent(
        session,
        [(participant.id, values.consent)],
        now=now,
        recorder=consent.Recorder(method=DASHBOARD, user_id=user_id),
    )
    record(
        session,
        now=now,
        action="participant.create",
        actor=DASHBOARD,
        user_id=user_id,
        participant_id=participant.id,
        detail={
            "external_id": participant.external_id,
            "coach_id": participant.coach_id,
            "timezone": participant.timezone,
            "release_date": participant.release_date.isoformat(),
        },
    )
    session.flush()
    if planner is not None:
        planner(session, now)
        session.flush()
    return participant


def change_phone(
    session: Session,
    participant: Participant,
    phone: str,
    *,
    kind: str,
    now: datetime,
    user_id: int | None,
    channel: str | None = None,
) -> None:
    """Give the person a new number (and channel): the old one is kept in the phone history,
    and texts not yet sent go to the new one."""
    if phone != participant.phone:
        session.add(
            PhoneChange(
                participant_id=participant.id,
                old_phone=participant.phone,
                new_phone=phone,
                kind=kind,
                changed_at=now,
                changed_by_id=user_id,
            )
        )
        participant.phone = phone
    if channel is not None:
        participant.channel = channel
    participant.updated_at = now
    session.flush()
    outbox_status.readdress_pending(session, participant.id, participant.address)


def edit_participant(
    session: Session,
    participant: Participant,
    values: ParticipantValues,
    *,
    now: datetime,
    user_id: int | None,
    planner: Planner | None = None,
) -> dict[str, Any]:
    """Store what changed; re-plan when the plan depends on it; audit; record a consent source
    given (bot.services.consent, which audits it). Returns {field: [old, new]} ("changed" for
    names and the phone, "recorded" for consent evidence), empty when nothing changed."""
    evidence_added = consent.record_evidence(
        session,
        participant,
        values.consent,
        now=now,
        recorder=consent.Recorder(method=DASHBOARD, user_id=user_id),
    )
    wanted: dict[str, Any] = {
        "external_id": values.external_id,
        "first_name": values.first_name,
        "last_name": values.last_name,
        "phone": values.phone,
        "channel": values.channel,
        "timezone": values.timezone,
        "language": values.language,
        "release_date": values.release_date,
        "coach_id": values.coach_id,
    }
    changed = {k: v for k, v in wanted.items() if getattr(participant, k) != v}
    if not changed:
        return {"consent": ["", "recorded"]} if evidence_added else {}
    shown = {
        k: ["changed", "changed"]
        if k in PRIVATE_FIELDS
        else [_plain(getattr(participant, k)), _plain(v)]
        for k, v in changed.items()
    }
    if "phone" in changed or "channel" in changed:
        change_phone(
            session,
            participant,
            values.phone,
            kind="edited",
            now=now,
            user_id=user_id,
            channel=values.channel,
        )
    for key, value in changed.items():
        if key not in ("phone", "channel"):
            setattr(participant, key, value)
    participant.updated_at = now
    # For someone not active the planner plans nothing now; the new version is what it plans
    # from when they are active again.
    replan = any(k in PLAN_FIELDS for k in changed)
    record(
        session,
        now=now,
        action="participant.edit",
        actor=DASHBOARD,
        user_id=user_id,
        participant_id=participant.id,
        detail={"changed": shown, "replanned": replan},
    )
    if replan:
        request_replan(session, participant, now, planner)
    session.flush()
    if evidence_added:
        shown["consent"] = ["", "recorded"]
    return shown


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def reassign(
    session: Session,
    participants: Iterable[Participant],
    coach_id: int | None,
    *,
    now: datetime,
    user_id: int | None,
) -> int:
    """Give these people to another coach (None: nobody yet). Returns how many moved; each
    move is audited with who they moved from."""
    errors: dict[str, str] = {}
    coach = _coach(session, str(coach_id) if coach_id is not None else "", errors)
    if errors:
        raise ParticipantInvalid(errors)
    moved = 0
    for participant in participants:
        if participant.coach_id == coach:
            continue
        record(
            session,
            now=now,
            action="participant.reassign",
            actor=DASHBOARD,
            user_id=user_id,
            participant_id=participant.id,
            detail={"from_coach_id": participant.coach_id, "to_coach_id": coach},
        )
        participant.coach_id = coach
        participant.updated_at = now
        moved += 1
    session.flush()
    return moved


@dataclass(frozen=True)
class Closed:
    contacts_cancelled: int
    outbox_cancelled: int
    expectations_cancelled: int

    @property
    def texts_cancelled(self) -> int:
        return self.contacts_cancelled + self.outbox_cancelled


def close_participant(
    session: Session, participant: Participant, reason: str, *, now: datetime, user_id: int | None
) -> Closed:
    """Close the enrolment for `reason`: no more texts (planned contacts, pending outbox rows
    and reply expectations cancelled), the history kept, the page says so."""
    reason = " ".join(reason.split())
    if not reason:
        raise ParticipantInvalid({"reason": "say why the enrolment is closed"})
    if len(reason) > MAX_CLOSE_REASON:
        raise ParticipantInvalid({"reason": f"is longer than {MAX_CLOSE_REASON} characters"})
    if participant.status == "closed":
        raise ChangeRefused(f"{participant.first_name}'s enrolment is already closed.")
    previous = participant.status
    participant.status = "closed"
    participant.closed_at = now
    participant.closed_reason = reason
    participant.plan_version += 1  # the planner plans nothing for someone closed
    participant.updated_at = now
    session.flush()
    closed = Closed(
        contacts_cancelled=planned_contacts.cancel_for_participant(
            session, participant.id, "participant_closed", now
        ),
        outbox_cancelled=outbox_status.cancel_pending_for_participant(
            session, participant.id, now, reason="closed"
        ),
        expectations_cancelled=expectations.cancel_for_participant(session, participant.id, now),
    )
    record(
        session,
        now=now,
        action="participant.close",
        actor=DASHBOARD,
        user_id=user_id,
        participant_id=participant.id,
        detail={
            "reason": reason,
            "previous_status": previous,
            "contacts_cancelled": closed.contacts_cancelled,
            "outbox_cancelled": closed.outbox_cancelled,
            "expectations_cancelled": closed.expectations_cancelled,
        },
    )
    session.flush()
    return closed


def reopen_participant(
    session: Session,
    participant: Participant,
    *,
    now: datetime,
    user_id: int | None,
    planner: Planner | None = None,
) -> str:
    """Reopen a closed enrolment, planned from now (nothing missed while closed is sent).
    Someone who had opted out and never opted back in stays opted out: reopening never texts a
    number that said STOP. Returns the new status."""
    if participant.status != "closed":
        raise ChangeRefused(f"{participant.first_name}'s enrolment is not closed.")
    participant.status = "opted_out" if participant.opted_out_at is not None else "active"
    reason = participant.closed_reason
    participant.closed_at = None
    participant.closed_reason = None
    record(
        session,
        now=now,
        action="participant.reopen",
        actor=DASHBOARD,
        user_id=user_id,
        participant_id=participant.id,
        detail={"status": participant.status, "closed_reason": reason},
    )
    request_replan(session, participant, now, planner)
    return participant.status


@dataclass(frozen=True)
class EnrolmentEvent:
    at: datetime
    action: str  # "close" or "reopen"
    reason: str | None
    by: str | None


def enrolment_history(session: Session, participant: Participant) -> list[EnrolmentEvent]:
    """Every close and reopen of this person, newest first, from the audit log."""
    rows = session.execute(
        select(AuditLog, User.name)
        .outerjoin(User, User.id == AuditLog.user_id)
        .where(
            AuditLog.participant_id == participant.id,
            AuditLog.action.in_(("participant.close", "participant.reopen")),
        )
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
    ).all()
    return [
        EnrolmentEvent(
            at=row.at,
            action=row.action.removeprefix("participant."),
            reason=(row.detail or {}).get("reason") if row.action == "participant.close" else None,
            by=name,
        )
        for row, name in rows
    ]


def phone_history(session: Session, participant: Participant) -> list[PhoneChange]:
    """The person's earlier numbers, newest change first."""
    return list(
        session.scalars(
            select(PhoneChange)
            .where(PhoneChange.participant_id == participant.id)
            .order_by(PhoneChange.changed_at.desc(), PhoneChange.id.desc())
        )
    )
