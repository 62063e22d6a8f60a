"""What the conversation page shows and does, for one participant already checked against the
viewer's caseload: the thread, flags, appointments, consent history, upcoming contacts, and the
coach's changes (reply, pause/resume, details, appointments). Every change returns what it did,
and the web layer writes the audit row in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import (
    Appointment,
    Flag,
    FlagEvent,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
)
from bot.models.appointments import KINDS as APPOINTMENT_KINDS
from bot.models.participants import LANGUAGES
from bot.phones import PhoneError, normalize_phone
from bot.services import consent_evidence, sendability
from bot.services.flags import SEVERITY_ORDER
from bot.services.locations import check_place, location_policy
from bot.services.replan import mark_for_replan
from bot.services.settings import get_setting
from bot.timeutil import in_quiet_hours, next_quiet_end, parse_hhmm

THREAD_PAGE = 100
MAX_REPLY_CHARS = 1600
# A staff reply to someone who texted this recently answers them: it goes at once, at any hour.

STATUS_LABELS = {
    "pending": "Waiting to send",
    "sending": "Sending",
    "queued": "Sent to carrier",
    "sent": "Sent",
    "delivered": "Delivered",
    "undelivered": "Not delivered",
    "failed": "Failed",
    "unknown": "Unknown - may not have been sent",
    "cancelled": "Not sent (cancelled)",
    "needs_template": "Not sent: WhatsApp needs an approved template",
}


class ChangeError(ValueError):
    """A change the coach asked for cannot be made; the message is shown as it is."""


@dataclass(frozen=True)
class ThreadEntry:
    direction: str  # "in" or "out"
    at: datetime
    body: str
    status: str | None = None
    status_label: str | None = None
    error_code: int | None = None
    purpose: str | None = None
    segments: int | None = None
    sent_by: int | None = None


def load_thread(
    session: Session, participant: Participant, *, before: datetime | None = None
) -> tuple[list[ThreadEntry], bool]:
    """The latest THREAD_PAGE messages both ways (older than `before`), oldest first, and
    whether there are older ones. Each side is read through its (participant_id, time) index."""
    inbound_q = select(InboundMessage).where(InboundMessage.participant_id == participant.id)
    outbound_q = select(OutboundMessage).where(OutboundMessage.participant_id == participant.id)
    if before is not None:
        inbound_q = inbound_q.where(InboundMessage.received_at < before)
        outbound_q = outbound_q.where(OutboundMessage.created_at < before)
    inbound = session.scalars(
        inbound_q.order_by(InboundMessage.received_at.desc()).limit(THREAD_PAGE + 1)
    ).all()
    outbound = session.scalars(
        outbound_q.order_by(OutboundMessage.created_at.desc()).limit(THREAD_PAGE + 1)
    ).all()
    entries = [ThreadEntry("in", m.received_at, m.body) for m in inbound] + [
        ThreadEntry(
            "out",
            m.sent_at or m.created_at if m.status not in ("pending", "cancelled") else m.created_at,
            m.body,
            status=m.status,
            status_label=STATUS_LABELS.get(m.status, m.status),
            error_code=m.error_code,
            purpose=m.purpose,
            segments=m.segments,
            sent_by=m.created_by_id,
        )
        for m in outbound
    ]
    # At the same instant the text that came in goes first: a reply never precedes its cause
    # (the webhook stores the message and its crisis reply with the same timestamp).
    entries.sort(key=lambda e: (e.at, e.direction == "out"))
    more = len(entries) > THREAD_PAGE
    return entries[-THREAD_PAGE:], more


def flags_for(session: Session, participant: Participant) -> tuple[list[Flag], list[Flag]]:
    """(unresolved flags, the last ten resolved)."""
    open_flags = session.scalars(
        select(Flag)
        .where(Flag.participant_id == participant.id, Flag.state != "resolved")
        .order_by(SEVERITY_ORDER, Flag.opened_at)
    ).all()
    resolved = session.scalars(
        select(Flag)
        .where(Flag.participant_id == participant.id, Flag.state == "resolved")
        .order_by(Flag.resolved_at.desc())
        .limit(10)
    ).all()
    return list(open_flags), list(resolved)


def flag_events(session: Session, flag: Flag) -> list[FlagEvent]:
    return list(
        session.scalars(
            select(FlagEvent).where(FlagEvent.flag_id == flag.id).order_by(FlagEvent.at)
        )
    )


def appointments_for(
    session: Session, participant: Participant, now: datetime
) -> list[Appointment]:
    """Upcoming appointments first (soonest first), then the last few past ones."""
    upcoming = session.scalars(
        select(Appointment)
        .where(Appointment.participant_id == participant.id, Appointment.starts_at >= now)
        .order_by(Appointment.starts_at)
        .limit(50)
    ).all()
    past = session.scalars(
        select(Appointment)
        .where(Appointment.participant_id == participant.id, Appointment.starts_at < now)
        .order_by(Appointment.starts_at.desc())
        .limit(5)
    ).all()
    return list(upcoming) + list(past)


def upcoming_contacts(
    session: Session, participant: Participant, now: datetime, limit: int = 10
) -> list[PlannedContact]:
    return list(
        session.scalars(
            select(PlannedContact)
            .where(
                PlannedContact.participant_id == participant.id,
                PlannedContact.state.in_(("planned", "queued")),
                PlannedContact.not_after >= now,
            )
            .order_by(PlannedContact.send_after)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class AutomationHold:
    """Why automated check-ins (and the welcome) are held for this person now; reminders go."""

    # "consent_evidence_missing" (every text but an answer is held), "crisis_open" or
    # "checkins_paused"
    reason: str
    until: datetime | None  # the end of a PAUSE; None while a crisis flag is open


def automation_hold(
    session: Session, participant: Participant, now: datetime
) -> AutomationHold | None:
    """The hold the sender applies to this person's check-ins (bot.services.sendability), said
    in the conversation so a coach knows why nothing automated is going out."""
    if participant.status in ("active", "paused") and consent_evidence.is_held(
        session, participant
    ):
        return AutomationHold(sendability.EVIDENCE_HOLD, None)
    if participant.id in sendability.in_crisis(session, {participant.id}):
        return AutomationHold("crisis_open", None)
    paused_until = participant.checkins_paused_until
    if paused_until is not None and paused_until > now:
        return AutomationHold("checkins_paused", paused_until)
    return None


@dataclass(frozen=True)
class QuietHours:
    now_in_quiet: bool
    sends_at: datetime


def quiet_hours_for(session: Session, participant: Participant, now: datetime) -> QuietHours:
    quiet = get_setting(session, "quiet_hours")
    zone = ZoneInfo(participant.timezone)
    start, end = parse_hhmm(quiet["start"]), parse_hhmm(quiet["end"])
    return QuietHours(
        now_in_quiet=in_quiet_hours(now, zone, start, end),
        sends_at=next_quiet_end(now, zone, start, end),
    )


def check_can_text(participant: Participant) -> None:
    if participant.status == "opted_out":
        raise ChangeError(
            f"{participant.first_name} has opted out of texts, so nothing can be sent. "
            "They can text START to receive texts again."
        )
    if participant.status == "closed":
        raise ChangeError(f"{participant.first_name}'s enrolment is closed; texts are off.")


def clean_reply(body: str) -> str:
    text = body.strip().replace("\r\n", "\n")
    if not text:
        raise ChangeError("Write a message before sending.")
    if len(text) > MAX_REPLY_CHARS:
        raise ChangeError(
            f"The message is too long ({len(text)} characters; {MAX_REPLY_CHARS} max)."
        )
    return text


def set_paused(participant: Participant, paused: bool, now: datetime) -> bool:
    """Pause or resume check-ins; bumps plan_version so the planner re-plans. Returns whether
    anything changed."""
    if participant.status in ("opted_out", "closed"):
        raise ChangeError(
            f"Check-ins cannot be {'paused' if paused else 'resumed'}: "
            f"{participant.first_name} is {participant.status.replace('_', ' ')}."
        )
    wanted = "paused" if paused else "active"
    if participant.status == wanted:
        return False
    participant.status = wanted
    # Re-planning from this moment; a resume texts nothing that fell during the pause.
    mark_for_replan(participant, now, restart=not paused)
    return True


def update_details(
    session: Session,
    participant: Participant,
    *,
    phone: str,
    timezone: str,
    language: str,
    now: datetime,
) -> dict[str, list[str]]:
    """Change phone, zone and language; returns {field: [old, new]} for what changed (phones
    as entered by staff are not logged, only stored)."""
    changes: dict[str, list[str]] = {}
    try:
        new_phone = normalize_phone(phone)
    except PhoneError as exc:
        raise ChangeError(f"Phone: {exc}") from None
    if new_phone != participant.phone:
        taken = session.scalar(
            select(Participant.id).where(
                Participant.phone == new_phone, Participant.id != participant.id
            )
        )
        if taken is not None:
            raise ChangeError("Phone: another participant already has that number.")
        changes["phone"] = ["changed", "changed"]
        participant.phone = new_phone
    timezone = timezone.strip()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChangeError(
            f"Time zone: {timezone!r} is not a time zone like America/New_York."
        ) from None
    if timezone != participant.timezone:
        changes["timezone"] = [participant.timezone, timezone]
        participant.timezone = timezone
    if language not in LANGUAGES:
        raise ChangeError("Language: choose English or Spanish.")
    if language != participant.language:
        changes["language"] = [participant.language, language]
        participant.language = language
    if changes:
        # Zone and phone change when and where contacts go: plan them again, from now.
        mark_for_replan(participant, now)
    return changes


def _appointment_time(local_value: str, participant: Participant) -> datetime:
    from bot.timeutil import local_to_utc

    try:
        wall = datetime.fromisoformat(local_value)
    except ValueError:
        raise ChangeError("Date and time: use the date and time pickers.") from None
    if wall.tzinfo is not None:
        raise ChangeError("Date and time: give the participant's local time.")
    return local_to_utc(wall, ZoneInfo(participant.timezone))


def add_appointment(
    session: Session,
    participant: Participant,
    *,
    kind: str,
    starts_local: str,
    location: str,
    now: datetime,
) -> Appointment:
    if kind not in APPOINTMENT_KINDS:
        raise ChangeError("Kind: choose one from the list.")
    starts_at = _appointment_time(starts_local, participant)
    if starts_at <= now:
        raise ChangeError("Date and time: the appointment must be in the future.")
    location = location.strip()[:200]
    place = check_place(location, location_policy(session))
    if place is not None and place.refused:
        # The same sensitive-word rules as the templates (bot/services/locations.py).
        raise ChangeError(f"Place: “{location}” {place.message}. Nothing was saved.")
    appointment = Appointment(
        participant_id=participant.id,
        kind=kind,
        starts_at=starts_at,
        location=location or None,
        status="scheduled",
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(appointment)
    session.flush()
    return appointment


def move_appointment(
    appointment: Appointment, participant: Participant, *, starts_local: str, now: datetime
) -> None:
    if appointment.status == "cancelled":
        raise ChangeError("This appointment is cancelled; add a new one instead.")
    starts_at = _appointment_time(starts_local, participant)
    if starts_at <= now:
        raise ChangeError("Date and time: the appointment must be in the future.")
    if starts_at == appointment.starts_at:
        return
    appointment.starts_at = starts_at
    # A new version supersedes the reminders planned for the old time; the person has not
    # confirmed the new time yet.
    appointment.version += 1
    appointment.status = "scheduled"
    appointment.responded_at = None
    appointment.updated_at = now


def cancel_appointment(appointment: Appointment, now: datetime) -> bool:
    if appointment.status == "cancelled":
        return False
    appointment.status = "cancelled"
    appointment.version += 1
    appointment.updated_at = now
    return True
