"""Consent evidence, read (issue 19.3): whether the program requires it, who has none, and the
coordinators' list of people waiting for it. bot.services.consent writes the evidence.

With the program setting `consent.require_consent_evidence` on, every text to a participant
without a recorded consent source is held by the sender (bot.services.sendability, reason
`consent_evidence_missing`) at enqueue, at claim and at the last look: never sent and not
cancelled, looked at again every few minutes, so the held texts go on the first pass after a
source is recorded, while their windows are open. What answers a person is not held (see
sendability.HELD_FOR_EVIDENCE).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, not_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from bot.bulk import in_ids
from bot.models import ConsentEvent, OutboundMessage, Participant, PlannedContact, User
from bot.services.caseload import Viewer, caseload_clause
from bot.services.sendability import CRISIS_RECHECK
from bot.services.settings import get_setting

SETTING, FIELD = "consent", "require_consent_evidence"
HOLD_REASON = "consent_evidence_missing"
# People who may still be texted (opted-out and closed people get nothing anyway).
_TEXTABLE = ("active", "paused")


def evidence_required(session: Session) -> bool:
    """Whether the program holds texts until a consent source is recorded (default off)."""
    return bool(get_setting(session, SETTING)[FIELD])


def has_source(
    participant_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> ColumnElement[bool]:
    """Whether that participant has a consent with a recorded source (one index probe)."""
    return exists().where(
        ConsentEvent.participant_id == participant_id,
        ConsentEvent.kind == "consent",
        ConsentEvent.source.is_not(None),
    )


def without_source(session: Session, participant_ids: Iterable[int]) -> set[int]:
    """Those of these participants with no recorded consent source."""
    ids = set(participant_ids)
    if not ids:
        return set()
    with_source = set(
        session.scalars(
            select(ConsentEvent.participant_id).where(
                in_ids(session, ConsentEvent.participant_id, ids),
                ConsentEvent.kind == "consent",
                ConsentEvent.source.is_not(None),
            )
        )
    )
    return ids - with_source


def held_for_evidence(session: Session, participant_ids: Iterable[int]) -> set[int]:
    """Those of these participants whose texts the sender holds now for lack of evidence:
    none while the setting is off (one settings read, then one query)."""
    ids = set(participant_ids)
    if not ids or not evidence_required(session):
        return set()
    return without_source(session, ids)


def is_held(session: Session, participant: Participant) -> bool:
    return participant.id in held_for_evidence(session, {participant.id})


@dataclass(frozen=True)
class WaitingPerson:
    """Someone whose texts are held for lack of consent evidence, with what is on file."""

    participant_id: int
    label: str
    status: str
    coach: str | None
    enrolled_at: datetime
    asserted_at: datetime | None  # the consent on file without a source, if any
    asserted_method: str | None  # "import" or "dashboard"
    asserted_file: str | None
    asserted_by: str | None  # the staff member's name, or e.g. "cli:ana"
    texts_held: int  # due planned texts and queued staff texts waiting now


def waiting(
    session: Session, viewer: Viewer, now: datetime, limit: int = 500
) -> list[WaitingPerson]:
    """The people in `viewer`'s caseload whose texts are held for lack of consent evidence,
    longest enrolled first; empty while the setting is off."""
    if not evidence_required(session):
        return []
    p, coach = Participant, aliased(User)
    rows = session.execute(
        select(p, coach.name)
        .outerjoin(coach, coach.id == p.coach_id)
        .where(p.status.in_(_TEXTABLE), not_(has_source(p.id)), caseload_clause(viewer, session))
        .order_by(p.enrolled_at, p.id)
        .limit(limit)
    ).all()
    ids = [row[0].id for row in rows]
    asserted = _latest_assertions(session, ids)
    held = _texts_held(session, ids, now)
    people = []
    for participant, coach_name in rows:
        event = asserted.get(participant.id)
        people.append(
            WaitingPerson(
                participant_id=participant.id,
                label=participant.label,
                status=participant.status,
                coach=coach_name,
                enrolled_at=participant.enrolled_at,
                asserted_at=event[0] if event else None,
                asserted_method=event[1] if event else None,
                asserted_file=event[2] if event else None,
                asserted_by=event[3] if event else None,
                texts_held=held.get(participant.id, 0),
            )
        )
    return people


def waiting_count(session: Session, viewer: Viewer) -> int:
    """How many people `waiting` would list (0 while the setting is off)."""
    if not evidence_required(session):
        return 0
    p = Participant
    return int(
        session.scalar(
            select(func.count())
            .select_from(p)
            .where(
                p.status.in_(_TEXTABLE), not_(has_source(p.id)), caseload_clause(viewer, session)
            )
        )
        or 0
    )


def _latest_assertions(
    session: Session, ids: list[int]
) -> dict[int, tuple[datetime, str, str | None, str | None]]:
    if not ids:
        return {}
    found: dict[int, tuple[datetime, str, str | None, str | None]] = {}
    for event, name in session.execute(
        select(ConsentEvent, User.name)
        .outerjoin(User, User.id == ConsentEvent.recorded_by_id)
        .where(in_ids(session, ConsentEvent.participant_id, ids), ConsentEvent.kind == "consent")
        .order_by(ConsentEvent.at, ConsentEvent.id)
    ):
        found[event.participant_id] = (
            event.at,
            event.method,
            event.import_file,
            name or event.recorded_by,
        )
    return found


def _texts_held(session: Session, ids: list[int], now: datetime) -> dict[int, int]:
    """Per person: planned texts already due (a held one is deferred a few minutes at a time)
    and staff texts waiting in the outbox."""
    if not ids:
        return {}
    counts: dict[int, int] = {}
    soon = now + CRISIS_RECHECK  # how far a hold defers a text at a time
    for contact_pid, n in session.execute(
        select(PlannedContact.participant_id, func.count())
        .where(
            in_ids(session, PlannedContact.participant_id, ids),
            PlannedContact.state == "planned",
            PlannedContact.send_after <= soon,
        )
        .group_by(PlannedContact.participant_id)
    ):
        counts[contact_pid] = counts.get(contact_pid, 0) + int(n)
    for pid, n in session.execute(
        select(OutboundMessage.participant_id, func.count())
        .where(
            in_ids(session, OutboundMessage.participant_id, ids),
            OutboundMessage.status == "pending",
        )
        .group_by(OutboundMessage.participant_id)
    ):
        if pid is not None:
            counts[pid] = counts.get(pid, 0) + int(n)
    return counts
