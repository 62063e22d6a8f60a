"""Coordinators change cadence and rules: the form is checked field by field, saving re-plans
future contacts only and says how many changed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import AuditLog, Participant, PlannedContact
from bot.services.settings import all_settings, get_setting
from bot.services.settings_editing import (
    SettingsInvalid,
    parse_settings_form,
    save_settings,
)
from scheduler.plan import plan
from tests.factories import make_participant, make_user

DEFAULT_FORM = {
    "checkin_days": "1, 2, 3, 5, 7, 10, 14",
    "weekly_until_day": "90",
    "send_time": "10:00",
    "quiet_start": "21:00",
    "quiet_end": "08:00",
    "reply_window_hours": "48",
    "confirm_by_hours_before": "24",
    "ladder_step_1": "assigned_coach",
    "ladder_step_2": "covering_coach",
    "ladder_step_3": "coordinators",
    "ladder_minutes": "15",
}


def _contact(
    session: Session,
    participant: Participant,
    now: datetime,
    at: datetime,
    occurrence: str,
    **kw: Any,
) -> PlannedContact:
    values: dict[str, Any] = {
        "participant_id": participant.id,
        "kind": "checkin",
        "rule": "checkin",
        "occurrence": occurrence,
        "version": "1",
        "template_key": "checkin.1",
        "send_after": at,
        "not_after": at + timedelta(hours=10),
        "state": "planned",
        "created_at": now,
    }
    values.update(kw)
    contact = PlannedContact(**values)
    session.add(contact)
    session.flush()
    return contact


def test_the_default_form_parses_to_the_default_settings(session: Session) -> None:
    current = all_settings(session)
    assert parse_settings_form(DEFAULT_FORM, current) == current


def test_every_wrong_field_gets_its_own_plain_message(session: Session) -> None:
    form = {
        **DEFAULT_FORM,
        "checkin_days": "1, two, 3",
        "send_time": "25:00",
        "reply_window_hours": "0",
        "ladder_step_2": "assigned_coach",
        "ladder_minutes": "x",
    }
    with pytest.raises(SettingsInvalid) as invalid:
        parse_settings_form(form, all_settings(session))
    errors = invalid.value.errors
    assert set(errors) == {
        "checkin_days",
        "send_time",
        "reply_window_hours",
        "ladder_step_2",
        "ladder_minutes",
    }
    assert "'two' is not a day number" in errors["checkin_days"]
    assert "HH:MM" in errors["send_time"]
    assert "from 1 to 336" in errors["reply_window_hours"]


def test_a_send_time_inside_quiet_hours_is_refused(session: Session) -> None:
    form = {**DEFAULT_FORM, "send_time": "07:30"}
    with pytest.raises(SettingsInvalid) as invalid:
        parse_settings_form(form, all_settings(session))
    assert "inside quiet hours (21:00–08:00)" in invalid.value.errors["send_time"]


def test_weekly_until_before_the_last_checkin_day_is_refused(session: Session) -> None:
    form = {**DEFAULT_FORM, "weekly_until_day": "10"}
    with pytest.raises(SettingsInvalid) as invalid:
        parse_settings_form(form, all_settings(session))
    assert "at least the last check-in day (14)" in invalid.value.errors["weekly_until_day"]


def test_changing_the_cadence_cancels_only_future_planned_contacts(
    session: Session, now: datetime, config: Config
) -> None:
    editor = make_user(session, now, role="coordinator")
    person = make_participant(session, now)
    past = _contact(session, person, now, now - timedelta(hours=2), "day-1")
    sent = _contact(session, person, now, now + timedelta(hours=1), "day-2", state="sent")
    future = _contact(session, person, now, now + timedelta(days=1), "day-3")
    later = _contact(session, person, now, now + timedelta(days=3), "day-5")
    new = parse_settings_form({**DEFAULT_FORM, "send_time": "11:30"}, all_settings(session))

    saved = save_settings(session, new, user_id=editor.id, now=now, planner=plan)
    session.commit()

    assert saved.changed_keys == ["cadence"]
    # The planner is installed: the cancelled contacts are planned again at the new time.
    assert saved.cancelled == 2 and saved.replanned
    assert saved.planned > 0
    for c in (past, sent, future, later):
        session.refresh(c)
    states = {c.occurrence: (c.state, c.state_reason) for c in (past, sent, future, later)}
    assert states == {
        # Overdue but unsent: the planner supersedes every unsent contact of the old plan
        # version (the new plan starts at `now`), so it is never sent under the old rules.
        "day-1": ("cancelled", "superseded"),
        "day-2": ("sent", None),
        "day-3": ("cancelled", "settings changed"),
        "day-5": ("cancelled", "settings changed"),
    }
    session.refresh(person)
    assert person.plan_version == 2  # the planner materialises them again
    assert get_setting(session, "cadence")["send_time"] == "11:30"
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "settings.save")).one()
    assert audit.user_id == editor.id
    assert audit.detail is not None
    assert audit.detail["changed"]["cadence"]["to"]["send_time"] == "11:30"


def test_with_a_planner_the_message_counts_added_dropped_and_moved_contacts(
    session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    _contact(session, person, now, now + timedelta(days=1), "day-3")
    _contact(session, person, now, now + timedelta(days=3), "day-5")
    _contact(session, person, now, now + timedelta(days=5), "day-7")
    calls: list[datetime] = []

    def planner(session: Session, now: datetime) -> None:
        # As a real planner would under the new cadence: day 3 moves by 90 minutes, day 5 is
        # unchanged, day 7 is no longer in the cadence, day 6 is new.
        calls.append(now)
        for occurrence, at in (
            ("day-3", now + timedelta(days=1, minutes=90)),
            ("day-5", now + timedelta(days=3)),
            ("day-6", now + timedelta(days=4)),
        ):
            _contact(session, person, now, at, occurrence, version="2")

    new = parse_settings_form(
        {**DEFAULT_FORM, "checkin_days": "1, 2, 3, 5, 6, 10, 14"}, all_settings(session)
    )
    saved = save_settings(session, new, user_id=None, now=now, planner=planner)

    assert calls == [now]
    assert saved.replanned and saved.cancelled == 3 and saved.planned == 3
    assert saved.changed_contacts == 3  # day-3 moved, day-7 dropped, day-6 added
    assert saved.message.startswith("Saved. 3 future contacts changed")


def test_escalation_rules_change_no_planned_contact(
    session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    contact = _contact(session, person, now, now + timedelta(days=1), "day-3")
    new = parse_settings_form(
        {**DEFAULT_FORM, "reply_window_hours": "24", "ladder_step_3": ""}, all_settings(session)
    )

    saved = save_settings(session, new, user_id=None, now=now)

    assert saved.changed_keys == ["escalation"]
    assert saved.cancelled == 0 and contact.state == "planned"
    assert "No planned contact changed" in saved.message
    escalation = get_setting(session, "escalation")
    assert escalation["reply_window_hours"] == 24
    assert escalation["ladder_steps"] == ["assigned_coach", "covering_coach"]


def test_saving_unchanged_settings_changes_nothing(
    session: Session, now: datetime, config: Config
) -> None:
    saved = save_settings(
        session,
        parse_settings_form(DEFAULT_FORM, all_settings(session)),
        user_id=None,
        now=now,
    )
    assert saved.changed_keys == [] and saved.message == "Nothing changed."
    assert session.scalars(select(AuditLog)).all() == []
