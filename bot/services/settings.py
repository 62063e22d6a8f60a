"""Program settings with their defaults (DESIGN.md §2 "Default program").

Coordinators change these in the dashboard; the planner and the sweep read them at run time.
Stored values are merged over the defaults, so a new key added in a later release has a value
on an old database without a migration.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import ProgramSetting

DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "cadence": {
        # Days after release with a check-in at send_time local, then weekly until the last day.
        "checkin_days": [1, 2, 3, 5, 7, 10, 14],
        "weekly_until_day": 90,
        "send_time": "10:00",
    },
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "windows": {
        # A check-in may go out until this local time on its day; the welcome for this many days.
        "checkin_until": "20:00",
        "welcome_days": 7,
    },
    "reminders": {
        "offsets": ["3d", "1d", "2h"],
        # A reminder is never sent later than this before its appointment.
        "stop_minutes_before": 30,
        # A reminder slot in quiet hours moves to this time the evening before ...
        "quiet_fallback_time": "20:00",
        # ... and is dropped if another reminder for the appointment went out this recently.
        "drop_if_sent_within_hours": 12,
    },
    "locations": {
        # Whether appointment reminders (and the reply to NEXT) name the place. A place with a
        # sensitive word (messages/sensitive.py: "County Court Room 3", "C0urt") is never
        # texted: `sensitive` says whether it is refused where it is entered ("refuse": import
        # line error, form error) or stored and texted as the neutral "the place you were
        # given" ("generic"); the coordinator is warned either way (bot/services/locations.py).
        "include_in_reminders": True,
        "sensitive": "generic",
    },
    "consent": {
        # Hold every text to a participant until how they consented (a source) is recorded:
        # bot.services.consent_evidence, bot.services.sendability.hold_for.
        "require_consent_evidence": False,
    },
    "escalation": {
        "reply_window_hours": 48,
        # A text waiting this long for a staff reply raises `unanswered_text` (high after 48 h).
        "unanswered_text_hours": 24,
        "misses_before_high": 2,
        "confirm_by_hours_before": 24,
        "delivery_failed_codes": [30003, 30004, 30005, 30006, 30007, 30008, 21211, 21614],
        "ladder_steps": ["assigned_coach", "covering_coach", "coordinators"],
        "ladder_minutes": 15,
        # After the last step, page it again every ladder_minutes until someone acknowledges.
        "repeat_last_step": True,
    },
}


def get_setting(session: Session, key: str) -> dict[str, Any]:
    """The setting's value: the stored one merged over the default."""
    if key not in DEFAULT_SETTINGS:
        raise KeyError(f"unknown setting {key!r}")
    value = copy.deepcopy(DEFAULT_SETTINGS[key])
    row = session.get(ProgramSetting, key)
    if row is not None:
        value.update(row.value)
    return value


def all_settings(session: Session) -> dict[str, dict[str, Any]]:
    stored = {row.key: row.value for row in session.scalars(select(ProgramSetting))}
    merged = copy.deepcopy(DEFAULT_SETTINGS)
    for key, value in stored.items():
        if key in merged:
            merged[key].update(value)
    return merged


def set_setting(
    session: Session, key: str, value: dict[str, Any], *, now: datetime, user_id: int | None
) -> None:
    if key not in DEFAULT_SETTINGS:
        raise KeyError(f"unknown setting {key!r}")
    row = session.get(ProgramSetting, key)
    if row is None:
        session.add(ProgramSetting(key=key, value=value, updated_at=now, updated_by_id=user_id))
    else:
        row.value = value
        row.updated_at = now
        row.updated_by_id = user_id


def seed_default_settings(session: Session, now: datetime) -> int:
    """Store the defaults for keys not stored yet; returns how many were added."""
    existing = set(session.scalars(select(ProgramSetting.key)))
    added = 0
    for key, value in DEFAULT_SETTINGS.items():
        if key not in existing:
            session.add(ProgramSetting(key=key, value=copy.deepcopy(value), updated_at=now))
            added += 1
    return added
