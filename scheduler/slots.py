"""The planner's rules and slots: when each of a participant's contacts is due, as pure
functions of the settings, the participant and their appointments (scheduler/plan.py writes
them as `PlannedContact` rows).

The version string of a slot (`v3.1a2b3c4d` for welcome and check-ins, `v3.a2.1a2b3c4d` for
reminders) encodes the participant's plan version, the appointment's version and the digest of
the settings the slots depend on, so a change anywhere writes new keys."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.models import Appointment, Participant
from bot.services.settings import get_setting
from bot.timeutil import in_quiet_hours, local_datetime, next_quiet_end, parse_hhmm
from messages.defaults import checkin_variant_key, reminder_key

SETTINGS_KEYS = ("cadence", "windows", "reminders", "quiet_hours")
# Appointment statuses that still get reminders.
REMINDED_STATUSES = ("scheduled", "confirmed")


@dataclass(frozen=True)
class Rules:
    """The settings the planner reads, parsed once per plan() call."""

    checkin_days: tuple[int, ...]
    send_time: time
    checkin_until: time
    welcome_days: int
    quiet_start: time
    quiet_end: time
    offsets: tuple[str, ...]
    stop_before: timedelta
    fallback_time: time
    drop_within: timedelta
    digest: str

    def quiet(self, instant: datetime, zone: ZoneInfo) -> bool:
        return in_quiet_hours(instant, zone, self.quiet_start, self.quiet_end)

    def out_of_quiet(self, instant: datetime, zone: ZoneInfo) -> datetime:
        return next_quiet_end(instant, zone, self.quiet_start, self.quiet_end)


def load_rules(session: Session) -> Rules:
    values = {key: get_setting(session, key) for key in SETTINGS_KEYS}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
    cadence, windows = values["cadence"], values["windows"]
    reminders, quiet = values["reminders"], values["quiet_hours"]
    days = sorted({int(d) for d in cadence["checkin_days"]})
    last = days[-1] if days else 0
    weekly_until = int(cadence.get("weekly_until_day") or 0)
    day = last + 7
    while weekly_until and day <= weekly_until:
        days.append(day)
        day += 7
    return Rules(
        checkin_days=tuple(days),
        send_time=parse_hhmm(cadence["send_time"]),
        checkin_until=parse_hhmm(windows["checkin_until"]),
        welcome_days=int(windows["welcome_days"]),
        quiet_start=parse_hhmm(quiet["start"]),
        quiet_end=parse_hhmm(quiet["end"]),
        offsets=tuple(str(o) for o in reminders["offsets"]),
        stop_before=timedelta(minutes=int(reminders["stop_minutes_before"])),
        fallback_time=parse_hhmm(reminders["quiet_fallback_time"]),
        drop_within=timedelta(hours=float(reminders["drop_if_sent_within_hours"])),
        digest=digest,
    )


@dataclass(frozen=True)
class Slot:
    kind: str
    rule: str
    occurrence: str
    version: str
    template_key: str
    send_after: datetime
    not_after: datetime
    appointment_id: int | None = None
    state: str = "planned"
    state_reason: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.occurrence, self.version)


def participant_version(participant: Participant, rules: Rules) -> str:
    return f"v{participant.plan_version}.{rules.digest}"


def reminder_version(participant: Participant, appointment: Appointment, rules: Rules) -> str:
    return f"v{participant.plan_version}.a{appointment.version}.{rules.digest}"


def appointment_part(version: str) -> str:
    """`v3.a2.1a2b3c4d` -> `a2`: reminders already sent for this appointment time."""
    parts = version.split(".")
    return parts[1] if len(parts) == 3 else ""


# --- slots -------------------------------------------------------------------------------


def welcome_slot(participant: Participant, rules: Rules) -> Slot:
    """Precise rules, Enrolment: 10:00 local on the release date, or at once when imported
    later (outside quiet hours, otherwise the next morning); open for `welcome_days`."""
    zone = ZoneInfo(participant.timezone)
    release_slot = local_datetime(participant.release_date, rules.send_time, zone)
    start = max(release_slot, participant.enrolled_at)
    send_after = rules.out_of_quiet(start, zone)
    return Slot(
        kind="welcome",
        rule="welcome",
        occurrence="welcome",
        version=participant_version(participant, rules),
        template_key="welcome",
        send_after=send_after,
        not_after=send_after + timedelta(days=rules.welcome_days),
    )


def checkin_slots(participant: Participant, rules: Rules) -> list[Slot]:
    """Every check-in of the cadence: send_time local on release + N days, until
    checkin_until the same local day. The variant number is the position in the cadence, so
    it does not change when the plan is re-made."""
    zone = ZoneInfo(participant.timezone)
    version = participant_version(participant, rules)
    slots = []
    for index, day in enumerate(rules.checkin_days, start=1):
        local_day = participant.release_date + timedelta(days=day)
        send_after = rules.out_of_quiet(local_datetime(local_day, rules.send_time, zone), zone)
        not_after = local_datetime(local_day, rules.checkin_until, zone)
        if not_after <= send_after:
            continue  # a configuration with no window that day: nothing can be sent
        slots.append(
            Slot(
                kind="checkin",
                rule="checkin",
                occurrence=f"day-{day}",
                version=version,
                template_key=checkin_variant_key(index),
                send_after=send_after,
                not_after=not_after,
            )
        )
    return slots


def _parse_offset(offset: str) -> tuple[int, str]:
    amount, unit = int(offset[:-1]), offset[-1]
    if unit not in "dhm":
        raise ValueError(f"reminder offset {offset!r}: use a number and d, h or m")
    return amount, unit


def _evening_before(slot: datetime, zone: ZoneInfo, rules: Rules) -> datetime:
    """Precise rules, Reminders: a slot in quiet hours moves earlier, to the fallback time
    (20:00) the evening before; "before" means the latest such evening not after the slot."""
    local = slot.astimezone(zone)
    day: date = local.date()
    if local.time() < rules.fallback_time:
        day -= timedelta(days=1)
    return local_datetime(day, rules.fallback_time, zone)


def reminder_slots(
    participant: Participant,
    appointment: Appointment,
    rules: Rules,
    now: datetime,
    *,
    already_sent: bool,
    since: datetime | None = None,
) -> list[Slot]:
    """Reminders for one appointment (Precise rules, Reminders and Windows).

    Slots from `since` (the moment of a re-planning change; default `now`) are planned, even
    those already passed at `now` (their window runs until shortly before the appointment).
    `already_sent`: a reminder for this appointment time already went out, so slots before
    `since` are simply passed; otherwise (an appointment imported late) the latest passed one
    goes at once.
    """
    since = now if since is None else since
    zone = ZoneInfo(participant.timezone)
    deadline = appointment.starts_at - rules.stop_before
    if deadline <= now or appointment.status not in REMINDED_STATUSES:
        return []
    local_start = appointment.starts_at.astimezone(zone)
    candidates: list[tuple[datetime, str, bool]] = []
    for offset in rules.offsets:
        amount, unit = _parse_offset(offset)
        if unit == "d":
            slot = local_datetime(
                local_start.date() - timedelta(days=amount), rules.send_time, zone
            )
        else:
            delta = timedelta(hours=amount) if unit == "h" else timedelta(minutes=amount)
            slot = appointment.starts_at - delta
        moved = rules.quiet(slot, zone)
        if moved:
            slot = _evening_before(slot, zone, rules)
        if slot < deadline:
            candidates.append((slot, offset, moved))
    candidates.sort()
    kept: list[tuple[datetime, str, bool]] = []
    for slot, offset, moved in candidates:
        if moved and any(slot - rules.drop_within <= other < slot for other, _, _ in kept):
            continue  # another reminder went out in the 12 hours before: one is enough
        kept.append((slot, offset, moved))
    passed = [c for c in kept if c[0] < since]
    upcoming = [c for c in kept if c[0] >= since]
    if passed and not already_sent:
        # Imported late: only the latest passed reminder, at once (outside quiet hours).
        _, offset, _ = passed[-1]
        at_once = rules.out_of_quiet(now, zone)
        if at_once < deadline and not any(c[0] <= at_once for c in upcoming):
            upcoming.insert(0, (at_once, offset, False))
    version = reminder_version(participant, appointment, rules)
    return [
        Slot(
            kind="reminder",
            rule=f"reminder.{offset}",
            occurrence=f"appt-{appointment.id}",
            version=version,
            template_key=reminder_key(appointment.kind, offset),
            send_after=slot,
            not_after=deadline,
            appointment_id=appointment.id,
        )
        for slot, offset, _ in upcoming
    ]
