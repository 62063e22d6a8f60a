"""Consent: the one owner of whether a person may be texted.

Opt-out (STOP by text, the carrier's 21610, a crisis text that also says STOP), opt-in (START
after STOP), the consent record (ConsentEvent rows: consent at enrolment, every opt-out and
opt-in) and cancelling what an opt-out cancels (planned contacts, pending outbox rows, pending
expectations). Inbound texts (bot.services.inbound), delivery outcomes (bot.services.delivery),
the importer and the dashboard call these; nothing else writes `status = 'opted_out'` or a
ConsentEvent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.log import log_event, mask_phone
from bot.models import ConsentEvent, Flag, Participant
from bot.services import audit, expectations
from bot.services import contacts as planned_contacts
from bot.services.flags import raise_flag, resolve_flag
from bot.services.outbox import status as outbox_status
from bot.services.replan import request_replan

log = logging.getLogger(__name__)


def record_consent(
    session: Session,
    participant_ids: Sequence[int],
    *,
    now: datetime,
    method: str,
    recorded_by_id: int | None = None,
) -> None:
    """The consent given at enrolment (an import, or the dashboard's form with the staff member
    who recorded it), one event per person, in one statement."""
    if not participant_ids:
        return
    session.execute(
        insert(ConsentEvent),
        [
            {
                "participant_id": pid,
                "kind": "consent",
                "at": now,
                "method": method,
                "recorded_by_id": recorded_by_id,
            }
            for pid in participant_ids
        ],
    )


def consent_history(session: Session, participant: Participant) -> list[ConsentEvent]:
    """Every consent event of this person, newest first (the conversation page shows them)."""
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.participant_id == participant.id)
            .order_by(ConsentEvent.at.desc())
        )
    )


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
