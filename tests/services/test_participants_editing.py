"""Enrolment from the dashboard (issue 18.1), without Flask: the importer's checks and words,
planned at once, reassigning, closing that stops every text and keeps the history, reopening
that plans from the moment of reopening, and every change in the audit log."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import (
    AuditLog,
    ConsentEvent,
    Expectation,
    PhoneChange,
    PlannedContact,
)
from bot.services import participants_editing as editing
from bot.services.outbox import enqueue
from scheduler.plan import plan
from tests.factories import make_participant, make_user

ZONE = "America/New_York"


def _form(**overrides: str) -> dict[str, str]:
    values = {
        "first_name": "Dana",
        "last_name": "Reyes",
        "phone": "(312) 555-0143",
        "channel": "sms",
        "timezone": "America/Chicago",
        "language": "es",
        "release_date": "2026-03-10",
        "coach_id": "",
        "external_id": "",
    }
    values.update(overrides)
    return values


def _actions(session: Session, participant_id: int) -> list[str]:
    return list(
        session.scalars(
            select(AuditLog.action)
            .where(AuditLog.participant_id == participant_id)
            .order_by(AuditLog.id)
        )
    )


def _planned(session: Session, participant_id: int) -> list[PlannedContact]:
    return list(
        session.scalars(
            select(PlannedContact)
            .where(
                PlannedContact.participant_id == participant_id,
                PlannedContact.state == "planned",
            )
            .order_by(PlannedContact.send_after)
        )
    )


def test_the_form_is_checked_with_the_importers_words_one_per_field(
    session: Session, now: datetime
) -> None:
    with pytest.raises(editing.ParticipantInvalid) as refused:
        editing.check_form(
            session,
            _form(
                first_name="",
                phone="555-01",
                timezone="Mars/Olympus",
                release_date="14/03/2026",
                coach_id="999",
                last_name="x" * 81,
            ),
            default_timezone=ZONE,
        )
    errors = refused.value.errors
    assert errors["first_name"] == "is required"
    assert errors["phone"] == "'555-01' is not a valid mobile number"
    assert errors["timezone"] == "'Mars/Olympus' is not an IANA time zone like America/Chicago"
    assert errors["release_date"] == "'14/03/2026' is not a date like 2026-03-14"
    assert errors["coach_id"] == "choose an active staff member from the list"
    assert errors["last_name"] == "is longer than 80 characters"


def test_a_number_or_program_id_already_taken_is_refused_in_the_importers_words(
    session: Session, now: datetime
) -> None:
    make_participant(session, now, external_id="P-00007", phone="+13125550143")
    with pytest.raises(editing.ParticipantInvalid) as refused:
        editing.check_form(session, _form(external_id="P-00007"), default_timezone=ZONE)
    assert refused.value.errors == {
        "phone": "the number already belongs to participant 'P-00007'",
        "external_id": "'P-00007' already belongs to another participant",
    }


def test_a_new_participant_is_enrolled_audited_and_their_welcome_planned_at_once(
    session: Session, now: datetime
) -> None:
    coordinator = make_user(session, now, role="coordinator")
    coach = make_user(session, now)
    values = editing.check_form(
        session, _form(coach_id=str(coach.id), release_date="2026-03-01"), default_timezone=ZONE
    )
    person = editing.create_participant(
        session, values, now=now, user_id=coordinator.id, planner=plan
    )
    session.commit()
    assert (person.display_name, person.phone, person.coach_id) == (
        "Dana Reyes",
        "+13125550143",
        coach.id,
    )
    assert person.external_id.startswith("P-")
    planned = _planned(session, person.id)
    # Released before today: the welcome goes at once (15:00 UTC is 9:00 in Chicago).
    assert planned[0].kind == "welcome" and planned[0].send_after == now
    event = session.scalars(
        select(ConsentEvent).where(ConsentEvent.participant_id == person.id)
    ).one()
    assert (event.method, event.recorded_by_id) == ("dashboard", coordinator.id)
    assert _actions(session, person.id) == ["participant.create"]


def test_a_changed_release_date_re_plans_at_once_and_names_are_not_in_the_audit_log(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now, release_date=date(2026, 3, 20), first_name="Sam")
    plan(session, now)
    assert _planned(session, person.id)[0].send_after.date() == date(2026, 3, 20)
    values = editing.check_form(
        session,
        {**editing.form_values(person), "release_date": "2026-03-25", "last_name": "Okafor"},
        default_timezone=ZONE,
        participant=person,
    )
    changes = editing.edit_participant(session, person, values, now=now, user_id=None, planner=plan)
    session.commit()
    assert changes == {
        "last_name": ["changed", "changed"],
        "release_date": ["2026-03-20", "2026-03-25"],
    }
    after = _planned(session, person.id)
    # Planned again from the new date: nothing is left on the old release day.
    assert after and min(c.send_after for c in after).date() == date(2026, 3, 25)
    welcome = next(c for c in after if c.kind == "welcome")
    assert welcome.send_after.date() == date(2026, 3, 25)
    row = session.scalars(select(AuditLog).where(AuditLog.action == "participant.edit")).one()
    assert "Okafor" not in str(row.detail)


def test_a_changed_number_keeps_the_old_one_and_readdresses_texts_not_yet_sent(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now, phone="+13125550100")
    pending = enqueue(
        session,
        idempotency_key="x",
        purpose="checkin",
        channel="sms",
        to_address="+13125550100",
        body="Hi",
        now=now,
        participant_id=person.id,
    ).message
    values = editing.check_form(
        session,
        {**editing.form_values(person), "phone": "+1 312 555 0199"},
        default_timezone=ZONE,
        participant=person,
    )
    editing.edit_participant(session, person, values, now=now, user_id=None)
    session.commit()
    history = session.scalars(select(PhoneChange)).one()
    assert (history.old_phone, history.new_phone, history.kind) == (
        "+13125550100",
        "+13125550199",
        "edited",
    )
    session.refresh(pending)
    assert pending.to_address == "+13125550199"


def test_an_unchanged_form_changes_nothing_and_writes_no_audit_row(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    values = editing.check_form(
        session, editing.form_values(person), default_timezone=ZONE, participant=person
    )
    assert editing.edit_participant(session, person, values, now=now, user_id=None) == {}
    assert _actions(session, person.id) == []


def test_reassigning_moves_only_those_with_another_coach_and_audits_each(
    session: Session, now: datetime
) -> None:
    old, new = make_user(session, now), make_user(session, now)
    a = make_participant(session, now, coach_id=old.id)
    b = make_participant(session, now, coach_id=new.id)
    assert editing.reassign(session, [a, b], new.id, now=now, user_id=None) == 1
    assert (a.coach_id, b.coach_id) == (new.id, new.id)
    row = session.scalars(select(AuditLog).where(AuditLog.action == "participant.reassign")).one()
    assert row.detail == {"from_coach_id": old.id, "to_coach_id": new.id}
    with pytest.raises(editing.ParticipantInvalid):
        editing.reassign(session, [a], 9999, now=now, user_id=None)


def test_closing_cancels_every_planned_text_and_pending_row_and_keeps_the_history(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    plan(session, now)
    sent = enqueue(
        session,
        idempotency_key="sent",
        purpose="checkin",
        channel="sms",
        to_address=person.phone,
        body="Hi",
        now=now - timedelta(days=1),
        participant_id=person.id,
        already_sent_at=now - timedelta(days=1),
    ).message
    pending = enqueue(
        session,
        idempotency_key="pending",
        purpose="reply",
        channel="sms",
        to_address=person.phone,
        body="Later",
        now=now,
        participant_id=person.id,
    ).message
    session.add(
        Expectation(
            participant_id=person.id,
            kind="reply",
            created_at=now,
            due_at=now + timedelta(days=2),
            state="pending",
        )
    )
    assert _planned(session, person.id)
    closed = editing.close_participant(
        session, person, "  finished   the program ", now=now, user_id=None
    )
    session.commit()
    assert closed.contacts_cancelled > 0 and closed.outbox_cancelled == 1
    assert closed.expectations_cancelled == 1
    assert (person.status, person.closed_reason) == ("closed", "finished the program")
    assert _planned(session, person.id) == []
    session.refresh(pending)
    session.refresh(sent)
    assert (pending.status, pending.error_message) == ("cancelled", "closed")
    assert sent.status == "sent"  # the history is kept
    # The planner plans nothing more for them.
    plan(session, now + timedelta(hours=1))
    assert _planned(session, person.id) == []
    history = editing.enrolment_history(session, person)
    assert [(e.action, e.reason) for e in history] == [("close", "finished the program")]


def test_closing_needs_a_reason_and_cannot_close_twice(session: Session, now: datetime) -> None:
    person = make_participant(session, now)
    with pytest.raises(editing.ParticipantInvalid) as refused:
        editing.close_participant(session, person, "   ", now=now, user_id=None)
    assert refused.value.errors == {"reason": "say why the enrolment is closed"}
    editing.close_participant(session, person, "moved away", now=now, user_id=None)
    with pytest.raises(editing.ChangeRefused):
        editing.close_participant(session, person, "again", now=now, user_id=None)


def test_reopening_plans_from_the_moment_of_reopening(session: Session, now: datetime) -> None:
    person = make_participant(session, now, release_date=date(2026, 2, 20))
    plan(session, now)
    editing.close_participant(session, person, "lost contact", now=now, user_id=None)
    later = now + timedelta(days=10)
    status = editing.reopen_participant(session, person, now=later, user_id=None, planner=plan)
    session.commit()
    assert status == "active" and person.closed_at is None
    planned = _planned(session, person.id)
    assert planned and all(c.send_after >= later for c in planned if c.kind == "checkin")
    assert _actions(session, person.id)[-2:] == ["participant.close", "participant.reopen"]
    assert [e.action for e in editing.enrolment_history(session, person)] == ["reopen", "close"]


def test_reopening_someone_who_had_opted_out_leaves_them_opted_out(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now, status="opted_out", opted_out_at=now)
    editing.close_participant(session, person, "finished", now=now, user_id=None)
    assert editing.reopen_participant(session, person, now=now, user_id=None, planner=plan) == (
        "opted_out"
    )
    assert _planned(session, person.id) == []
