"""Consent: the one owner of whether a person may be texted.

Opt-out (STOP by text, the carrier's 21610, a crisis text that also says STOP), opt-in (START
after STOP), the consent record (ConsentEvent rows: consent at enrolment with its evidence or
as asserted by the import or staff member that recorded it, evidence recorded later, every
opt-out and opt-in) and cancelling what an opt-out cancels (planned contacts, pending outbox
rows, pending expectations). Inbound texts (bot.services.inbound), delivery outcomes (bot.services.delivery),
the importer and the dashboard call these; nothing else writes `status = 'opted_out'` or a
ConsentEvent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.bulk import in_ids
from bot.log import log_event, mask_phone
from bot.models import ConsentEvent, Flag, Participant, User
from bot.services import audit, expectations
from bot.services import contacts as planned_contacts
from bot.services.flags import raise_flag, resolve_flag
from bot.services.outbox import status as outbox_status
from bot.services.replan import request_replan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    """How and when a person consented, as a program's own records say ("signed enrolment
    form", 2026-02-27). No source: consent was only asserted by whoever recorded it."""

    source: str | None = None
    consent_date: date | None = None


@dataclass(frozen=True)
class Recorder:
    """Who records consent, and how: `method` ("import" or "dashboard"), the staff member
    (`user_id`), or a name for someone without an account (`label`, e.g. "cli:ana"), and the
    import's file name."""

    method: str
    user_id: int | None = None
    label: str | None = None
    import_file: str | None = None


def record_consent(
    session: Session,
    given: Sequence[tuple[int, Evidence]],
    *,
    now: datetime,
    recorder: Recorder,
) -> None:
    """The consent given at enrolment (an import, or the dashboard's form), one event per
    person with its evidence, in one statement. A person without a source has consent asserted
    by this import or staff member (file, who, when), and no evidence."""
    if not given:
        return
    session.execute(
        insert(ConsentEvent),
        [_event_values(pid, evidence, now, recorder) for pid, evidence in given],
    )


def _event_values(
    participant_id: int, evidence: Evidence, now: datetime, recorder: Recorder
) -> dict[str, Any]:
    return {
        "participant_id": participant_id,
        "kind": "consent",
        "at": now,
        "method": recorder.method,
        "recorded_by_id": recorder.user_id,
        "recorded_by": recorder.label,
        "import_file": recorder.import_file,
        "source": evidence.source,
        "consent_date": evidence.consent_date if evidence.source else None,
    }


def latest_evidence(session: Session, participant_id: int) -> Evidence | None:
    """The evidence last recorded for this person (None: none has a source)."""
    row = session.execute(
        select(ConsentEvent.source, ConsentEvent.consent_date)
        .where(
            ConsentEvent.participant_id == participant_id,
            ConsentEvent.kind == "consent",
            ConsentEvent.source.is_not(None),
        )
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
        .limit(1)
    ).first()
    return Evidence(row.source, row.consent_date) if row is not None else None


def latest_evidence_of(session: Session, participant_ids: Iterable[int]) -> dict[int, Evidence]:
    """`latest_evidence` for many people at once (the importer's re-import)."""
    ids = set(participant_ids)
    if not ids:
        return {}
    found: dict[int, Evidence] = {}
    for pid, source, consent_date in session.execute(
        select(ConsentEvent.participant_id, ConsentEvent.source, ConsentEvent.consent_date)
        .where(
            in_ids(session, ConsentEvent.participant_id, ids),
            ConsentEvent.kind == "consent",
            ConsentEvent.source.is_not(None),
        )
        .order_by(ConsentEvent.at, ConsentEvent.id)
    ):
        found[pid] = Evidence(source, consent_date)  # the latest wins
    return found


def record_evidence(
    session: Session,
    participant: Participant,
    evidence: Evidence,
    *,
    now: datetime,
    recorder: Recorder,
    current: Evidence | None = None,
) -> bool:
    """Record how a person already enrolled consented (the form's edit, a re-import with the
    consent columns): a new consent event, the earlier ones kept. Nothing when there is no
    source or it is the evidence already on file (`current`, read here when not given).
    Texts held for lack of evidence (bot.services.sendability) go on the next pass while
    their windows are open. Returns whether anything was recorded."""
    if not evidence.source:
        return False
    if current is None:
        current = latest_evidence(session, participant.id)
    if current == evidence:
        return False
    session.execute(insert(ConsentEvent), [_event_values(participant.id, evidence, now, recorder)])
    audit.record(
        session,
        now=now,
        action="participant.consent_evidence",
        actor=recorder.label or recorder.method,
        user_id=recorder.user_id,
        participant_id=participant.id,
        detail={
            "method": recorder.method,
            "file": recorder.import_file,
            "had_evidence": current is not None,
        },
    )
    log_event(log, "participant.consent_evidence", participant_id=participant.id)
    return True


@dataclass(frozen=True)
class HistoryEntry:
    """One consent event as the participant page shows it, with who recorded it by name."""

    event: ConsentEvent
    recorded_by: str | None  # the staff member's name, or e.g. "cli:ana"; None: nobody

    @property
    def asserted(self) -> bool:
        """A consent with no source: asserted by an import or a staff member, no evidence."""
        return self.event.kind == "consent" and not self.event.source


def consent_history(session: Session, participant: Participant) -> list[HistoryEntry]:
    """Every consent event of this person, newest first (the conversation page shows them)."""
    rows = session.execute(
        select(ConsentEvent, User.name)
        .outerjoin(User, User.id == ConsentEvent.recorded_by_id)
        .where(ConsentEvent.participant_id == participant.id)
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
    ).all()
    return [HistoryEntry(event, name or event.recorded_by) for event, name in rows]


def opt_out(
    session: Session,
    participant: Participant,
    *,
    now: datetime,
    method: str,
    wording: str | None,
    actor: str = "participant",
) -> bool:
    """Record an opt-out and stop everything that would text this person: planned contacts and
    pending outbox rows are cancelled, pending expectations too, and an `opted_out` info flag
    tells the coach. Returns False when the person had already opted out."""
    if participant.status == "opted_out":
        return False
    previous = participant.status
    participant.status = "opted_out"
    participant.opted_out_at = now
    participant.updated_at = now
    session.add(
        ConsentEvent(
            participant_id=participant.id, kind="opt_out", at=now, method=method, wording=wording
        )
    )
    cancelled = _cancel_what_an_opt_out_cancels(session, participant.id, now)
    raise_flag(
        session,
        reason="opted_out",
        now=now,
        participant_id=participant.id,
        detail={"method": method},
    )
    audit.record(
        session,
        now=now,
        action="participant.opted_out",
        actor=actor,
        participant_id=participant.id,
        detail={"method": method, "previous_status": previous, **cancelled},
    )
    log_event(
        log,
        "participant.opted_out",
        participant_id=participant.id,
        method=method,
        phone=mask_phone(participant.phone),
    )
    return True


def _cancel_what_an_opt_out_cancels(
    session: Session, participant_id: int, now: datetime
) -> dict[str, int]:
    """Planned contacts, pending outbox rows and pending expectations of this person.

    Rows a scheduler tick holds locked right now are skipped, not waited for: the opt-out must
    commit at once, because the sender's last look before each request (scheduler/send.py)
    reads the person's status, and a STOP waiting on the tick's locks would commit only after
    that look. What is skipped here is cancelled by the claim or the last look, which both read
    the status again."""
    return {
        "contacts_cancelled": planned_contacts.cancel_for_participant(
            session, participant_id, "opted_out", now
        ),
        "outbox_cancelled": outbox_status.cancel_pending_for_participant(
            session, participant_id, now
        ),
        "expectations_cancelled": expectations.cancel_for_participant(session, participant_id, now),
    }


def _rowcount(result: Any) -> int:
    count: int = getattr(result, "rowcount", 0) or 0
    return count


def opt_in(
    session: Session, participant: Participant, *, now: datetime, method: str, wording: str | None
) -> bool:
    """START after STOP: active again, a new plan version (so the planner plans afresh rather
    than reviving cancelled contacts), and the `opted_out` flag resolved. False when the person
    was not opted out (START from someone active or paused changes nothing)."""
    if participant.status != "opted_out":
        return False
    participant.status = "active"
    participant.opted_out_at = None
    # Re-planning: planned from this moment, so a check-in due before the next tick still goes.
    request_replan(session, participant, now, restart=True)
    session.add(
        ConsentEvent(
            participant_id=participant.id, kind="opt_in", at=now, method=method, wording=wording
        )
    )
    open_flag = session.scalars(
        select(Flag).where(
            Flag.participant_id == participant.id,
            Flag.reason == "opted_out",
            Flag.state != "resolved",
        )
    ).first()
    if open_flag is not None:
        resolve_flag(
            session,
            open_flag,
            outcome="no_action_needed",
            note="Opted back in by text.",
            now=now,
            user_id=None,
            automatic=True,
        )
    audit.record(
        session,
        now=now,
        action="participant.opted_in",
        actor="participant",
        participant_id=participant.id,
        detail={"method": method},
    )
    log_event(log, "participant.opted_in", participant_id=participant.id, method=method)
    return True
