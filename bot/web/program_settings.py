"""/settings: the program's rhythm (cadence, send time, quiet hours) and rules (reply window,
confirm-by offset, escalation ladder, whether texts wait for consent evidence). Saving re-plans future contacts only and says how many
changed."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from bot.services import consent_evidence
from bot.services.locations import SENSITIVE_HANDLING, neutral_place, withheld_places
from bot.services.settings import all_settings
from bot.services.settings_editing import (
    LADDER_STEPS,
    PLACE_IN_REMINDERS,
    SettingsInvalid,
    parse_settings_form,
    save_settings,
)

from .auth import current_staff, roles_required
from .context import db, state, utcnow

bp = Blueprint("program_settings", __name__)


def form_values(settings: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The settings as the form shows them."""
    cadence, quiet, escalation = (
        settings["cadence"],
        settings["quiet_hours"],
        settings["escalation"],
    )
    values = {
        "checkin_days": ", ".join(str(d) for d in cadence["checkin_days"]),
        "weekly_until_day": str(cadence["weekly_until_day"]),
        "send_time": cadence["send_time"],
        "quiet_start": quiet["start"],
        "quiet_end": quiet["end"],
        "reply_window_hours": str(escalation["reply_window_hours"]),
        "unanswered_text_hours": str(escalation["unanswered_text_hours"]),
        "confirm_by_hours_before": str(escalation["confirm_by_hours_before"]),
        "ladder_minutes": str(escalation["ladder_minutes"]),
        "place_in_reminders": "include"
        if settings["locations"]["include_in_reminders"]
        else "leave_out",
        "sensitive_place": settings["locations"]["sensitive"],
        "require_consent_evidence": "yes"
        if settings["consent"]["require_consent_evidence"]
        else "",
    }
    steps = list(escalation["ladder_steps"])
    for i in range(1, len(LADDER_STEPS) + 1):
        values[f"ladder_step_{i}"] = steps[i - 1] if i <= len(steps) else ""
    return values


def _page(values: dict[str, str], errors: dict[str, str], status: int) -> tuple[str, int]:
    return (
        render_template(
            "settings.html",
            title="Settings",
            values=values,
            errors=errors,
            ladder_steps=LADDER_STEPS,
            place_in_reminders=PLACE_IN_REMINDERS,
            sensitive_place=SENSITIVE_HANDLING,
            withheld=withheld_places(db(), utcnow()),
            neutral_place=neutral_place,
            zone=state().config.program_timezone,
            waiting_for_evidence=consent_evidence.waiting_count(db(), current_staff()),
        ),
        status,
    )


@bp.get("/settings")
@roles_required("coordinator", "admin")
def show() -> ResponseReturnValue:
    return _page(form_values(all_settings(db())), {}, 200)


@bp.post("/settings")
@roles_required("coordinator", "admin")
def save() -> ResponseReturnValue:
    session = db()
    form = {key: value for key, value in request.form.items() if key != "csrf_token"}
    try:
        new = parse_settings_form(form, all_settings(session))
    except SettingsInvalid as invalid:
        return _page(form, invalid.errors, 422)
    saved = save_settings(
        session, new, user_id=current_staff().id, now=utcnow(), planner=state().planner
    )
    session.commit()
    flash(saved.message, "success")
    waiting = consent_evidence.waiting_count(session, current_staff())
    if waiting:
        people = "person is" if waiting == 1 else "people are"
        flash(
            f"{waiting} {people} waiting for consent evidence: no text goes to them until "
            "how they consented is recorded (see “Waiting for consent evidence”).",
            "info",
        )
    return redirect(url_for(".show"))
