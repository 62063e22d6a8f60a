"""Coordinators change the program's rhythm and rules: parse and check the settings form, store
it, and re-plan future contacts only, saying how many changed.

Re-planning never touches the past: contacts already queued, sent or skipped stay as they are.
Planned contacts still in the future (state `planned`, `send_after` > now) are cancelled with the
reason "settings changed", each active participant's `plan_version` is bumped (the documented
signal that their plan must be materialised again), and the planner (scheduler.plan.plan,
passed in by the caller: a service never imports the scheduler) runs at once, so the
coordinator sees the real difference: how many future contacts were added, dropped or moved.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import PlannedContact
from bot.services import contacts as planned_contacts
from bot.services.audit import record
from bot.services.locations import SENSITIVE_HANDLING
from bot.services.replan import request_replan_of_active
from bot.services.settings import all_settings, set_setting
from bot.timeutil import parse_hhmm

# Settings the planner reads; escalation (reply window, confirm-by, ladder) changes no contact.
PLAN_KEYS = ("cadence", "quiet_hours", "windows", "reminders")
LADDER_STEPS = {
    "assigned_coach": "The participant's own coach",
    "covering_coach": "The coach covering for them when they are away",
    "coordinators": "Every coordinator with a phone",
}
_HHMM = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
# Whether reminders name the appointment's place (the `locations` setting).
PLACE_IN_REMINDERS = {
    "include": "Name the place (unless it has a sensitive word)",
    "leave_out": "Never name the place: say “the place you were given”",
}


class SettingsInvalid(ValueError):
    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


def _int(errors: dict[str, str], name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        errors[name] = f"enter a whole number from {low} to {high}"
        return low
    if not low <= value <= high:
        errors[name] = f"enter a whole number from {low} to {high}"
    return value


def _time(errors: dict[str, str], name: str, raw: str) -> str:
    raw = raw.strip()
    if not _HHMM.match(raw):
        errors[name] = "enter a time as HH:MM, 24-hour (e.g. 10:00 or 21:30)"
        return raw
    hours, minutes = raw.split(":")
    return f"{int(hours):02d}:{minutes}"


def _minutes(hhmm: str) -> int:
    t = parse_hhmm(hhmm)
    return t.hour * 60 + t.minute


def _in_quiet(at: str, start: str, end: str) -> bool:
    a, s, e = _minutes(at), _minutes(start), _minutes(end)
    return s <= a < e if s <= e else a >= s or a < e


def parse_settings_form(
    form: Mapping[str, str], current: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The new values of every setting the form covers, merged over `current`; raise
    SettingsInvalid with one plain-language message per wrong field."""
    errors: dict[str, str] = {}
    days: list[int] = []
    for part in re.split(r"[,\s]+", form.get("checkin_days", "").strip()):
        if not part:
            continue
        if not part.isdigit() or not 0 <= int(part) <= 365:
            errors["checkin_days"] = (
                f"{part!r} is not a day number; list days after release from 0 to 365, "
                "separated by commas"
            )
            break
        days.append(int(part))
    days = sorted(set(days))
    weekly_until = _int(errors, "weekly_until_day", form.get("weekly_until_day", ""), 0, 730)
    if days and "weekly_until_day" not in errors and 0 < weekly_until < days[-1]:
        errors["weekly_until_day"] = (
            f"must be 0 (no weekly check-ins) or at least the last check-in day ({days[-1]})"
        )
    send_time = _time(errors, "send_time", form.get("send_time", ""))
    quiet_start = _time(errors, "quiet_start", form.get("quiet_start", ""))
    quiet_end = _time(errors, "quiet_end", form.get("quiet_end", ""))
    if "quiet_start" not in errors and "quiet_end" not in errors:
        if quiet_start == quiet_end:
            errors["quiet_end"] = "quiet hours must end at a different time than they start"
        elif "send_time" not in errors and _in_quiet(send_time, quiet_start, quiet_end):
            errors["send_time"] = (
                f"{send_time} is inside quiet hours ({quiet_start}–{quiet_end}); "
                "nothing could go out then"
            )
    reply_window = _int(errors, "reply_window_hours", form.get("reply_window_hours", ""), 1, 336)
    # A form from before this setting existed keeps the stored value.
    unanswered = _int(
        errors,
        "unanswered_text_hours",
        form.get(
            "unanswered_text_hours",
            str(current.get("escalation", {}).get("unanswered_text_hours", 24)),
        ),
        1,
        336,
    )
    confirm_by = _int(
        errors, "confirm_by_hours_before", form.get("confirm_by_hours_before", ""), 1, 168
    )
    ladder_minutes = _int(errors, "ladder_minutes", form.get("ladder_minutes", ""), 1, 240)
    steps: list[str] = []
    for i in range(1, len(LADDER_STEPS) + 1):
        step = form.get(f"ladder_step_{i}", "").strip()
        if not step:
            continue
        if step not in LADDER_STEPS:
            errors[f"ladder_step_{i}"] = "choose one of the listed people"
        elif step in steps:
            errors[f"ladder_step_{i}"] = "each person can be on the ladder once"
        else:
            steps.append(step)
    if not steps and not any(k.startswith("ladder_step") for k in errors):
        errors["ladder_step_1"] = "the ladder needs at least one step, or nobody is paged"
    locations = current.get("locations", {})
    # A form from before these settings existed keeps the stored values.
    in_reminders = form.get(
        "place_in_reminders",
        "include" if locations.get("include_in_reminders", True) else "leave_out",
    )
    if in_reminders not in PLACE_IN_REMINDERS:
        errors["place_in_reminders"] = "choose one of the listed options"
    sensitive_place = form.get("sensitive_place", str(locations.get("sensitive", "generic")))
    if sensitive_place not in SENSITIVE_HANDLING:
        errors["sensitive_place"] = "choose one of the listed options"
    if errors:
        raise SettingsInvalid(errors)
    new = {key: dict(value) for key, value in current.items()}
    new["locations"].update(
        include_in_reminders=in_reminders == "include", sensitive=sensitive_place
    )
    new["cadence"].update(checkin_days=days, weekly_until_day=weekly_until, send_time=send_time)
    new["quiet_hours"].update(start=quiet_start, end=quiet_end)
    # A checkbox: absent means off.
    new["consent"].update(require_consent_evidence=form.get("require_consent_evidence") == "yes")
    new["escalation"].update(
        reply_window_hours=reply_window,
        unanswered_text_hours=unanswered,
        confirm_by_hours_before=confirm_by,
        ladder_steps=steps,
        ladder_minutes=ladder_minutes,
    )
    return new


@dataclass(frozen=True)
class SettingsSaved:
    changed_keys: list[str]
    cancelled: int  # future planned contacts cancelled because the plan's settings changed
    planned: int  # future planned contacts created by the re-plan (0 when no planner ran)
    changed_contacts: int  # future contacts added, dropped or moved
    replanned: bool  # whether the planner ran (False: it runs on the next tick)

    @property
    def message(self) -> str:
        if not self.changed_keys:
            return "Nothing changed."
        if not any(key in PLAN_KEYS for key in self.changed_keys):
            return (
                "Saved. No planned contact changed: the new rules apply to flags and "
                "messages from now on."
            )
        if self.replanned:
            noun = "contact" if self.changed_contacts == 1 else "contacts"
            return (
                f"Saved. {self.changed_contacts} future {noun} changed "
                f"({self.cancelled} re-planned, {self.planned} now planned). "
                "Nothing already sent was touched."
            )
        noun = "contact was" if self.cancelled == 1 else "contacts were"
        return (
            f"Saved. {self.cancelled} future planned {noun} cancelled and will be planned "
            "again with the new settings on the next scheduler pass. Nothing already sent "
            "was touched."
        )


def _future_planned(session: Session, now: datetime) -> dict[tuple[int, str, str], datetime]:
    rows = session.execute(
        select(
            PlannedContact.participant_id,
            PlannedContact.rule,
            PlannedContact.occurrence,
            PlannedContact.send_after,
        ).where(PlannedContact.state == "planned", PlannedContact.send_after > now)
    )
    return {(pid, rule, occ): send_after for pid, rule, occ, send_after in rows}


# Plans future contacts as of `now` (scheduler.plan.plan). Services never import the
# scheduler: the caller that can see both (the web app's factory, a test) passes it in.
Planner = Callable[[Session, datetime], object]


def save_settings(
    session: Session,
    new: Mapping[str, dict[str, Any]],
    *,
    user_id: int | None,
    now: datetime,
    planner: Planner | None = None,
    actor: str = "dashboard",
) -> SettingsSaved:
    """Store the settings that differ, then re-plan the future if the plan depends on them:
    with `planner`, at once (the coordinator sees how many contacts changed); without, by
    the next scheduler pass (the bumped plan versions say so)."""
    current = all_settings(session)
    changed = [key for key, value in new.items() if current.get(key) != value]
    for key in changed:
        set_setting(session, key, dict(new[key]), now=now, user_id=user_id)
    if not changed:
        return SettingsSaved([], 0, 0, 0, replanned=False)
    record(
        session,
        now=now,
        action="settings.save",
        actor=actor,
        user_id=user_id,
        detail={"changed": {key: {"from": current.get(key), "to": new[key]} for key in changed}},
    )
    if not any(key in PLAN_KEYS for key in changed):
        session.flush()
        return SettingsSaved(changed, 0, 0, 0, replanned=False)
    before = _future_planned(session, now)
    cancelled = planned_contacts.cancel_future(session, now, "settings changed")
    request_replan_of_active(session, now)
    session.flush()
    if planner is None:
        return SettingsSaved(changed, cancelled, 0, cancelled, replanned=False)
    planner(session, now)
    session.flush()
    after = _future_planned(session, now)
    moved_or_dropped = sum(1 for k, at in before.items() if after.get(k) != at)
    added = sum(1 for k in after if k not in before)
    return SettingsSaved(changed, cancelled, len(after), moved_or_dropped + added, replanned=True)
