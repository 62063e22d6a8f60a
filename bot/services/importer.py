"""CSV imports of participants and appointments, all-or-nothing.

Every row is checked before anything is written; any bad row means nothing is imported and
every bad line is named the way the file numbers it (the header is line 1):
`line 7: phone: '555-01' is not a valid mobile number`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.models import Appointment, Participant, User
from bot.models.appointments import KINDS as APPOINTMENT_KINDS
from bot.models.participants import CHANNELS, LANGUAGES, MAX_CONSENT_SOURCE
from bot.phones import PhoneError, normalize_phone
from bot.services import audit, consent
from bot.services.locations import LocationPolicy, check_place, location_policy
from bot.services.replan import mark_for_replan
from bot.timeutil import local_to_utc

PARTICIPANT_REQUIRED = ("external_id", "first_name", "phone", "release_date")
PARTICIPANT_OPTIONAL = (
    "timezone",
    "language",
    "coach_email",
    "channel",
    "consent_source",
    "consent_date",
)
APPOINTMENT_REQUIRED = ("external_id", "kind", "starts_at")
APPOINTMENT_OPTIONAL = ("location", "appointment_id")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportFailed(Exception):
    """The file was refused; nothing was written."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"{len(errors)} problem(s); nothing imported")
        self.errors = errors


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Participants whose plan depends on something that changed (release date, zone).
    replanned: int = 0
    notes: list[str] = field(default_factory=list)
    # Lines imported as they are but worth a coordinator's look (a place reminders will not
    # name): `line 4: location: ...`.
    warnings: list[LineError] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.replanned} re-planned"
        )


@dataclass(frozen=True)
class _Rows:
    """Data rows with the line number the file gives them."""

    fieldnames: list[str]
    rows: list[tuple[int, dict[str, str]]]


def _read_csv(stream: TextIO, required: Iterable[str]) -> _Rows:
    try:
        text = stream.read()
    except UnicodeDecodeError as exc:
        raise ImportFailed([LineError(1, f"the file is not UTF-8 text ({exc.reason})")]) from None
    reader = csv.DictReader(text.lstrip("\ufeff").splitlines(), restkey="__extra__")
    fieldnames = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = fieldnames
    missing = [name for name in required if name not in fieldnames]
    if missing:
        raise ImportFailed([LineError(1, f"missing column(s): {', '.join(missing)}")])
    rows: list[tuple[int, dict[str, str]]] = []
    errors: list[LineError] = []
    for record in reader:
        line = reader.line_num
        if record.get("__extra__"):
            errors.append(LineError(line, "has more fields than the header"))
            continue
        values = {k: (v or "").strip() for k, v in record.items() if k is not None}
        if not any(values.values()):
            continue  # a blank line is not a row
        rows.append((line, values))
    if errors:
        raise ImportFailed(errors)
    return _Rows(fieldnames, rows)


# --- participants -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _ParticipantRow:
    line: int
    external_id: str
    first_name: str
    phone: str
    release_date: date
    timezone: str
    language: str
    channel: str
    coach_id: int | None
    coach_given: bool
    # How and when the person consented (issue 19.3); no source: consent is asserted by the
    # import (or the staff member) that records it.
    consent_source: str | None = None
    consent_date: date | None = None

    @property
    def evidence(self) -> consent.Evidence:
        return consent.Evidence(self.consent_source, self.consent_date)


def _check_participant_row(
    line: int,
    values: dict[str, str],
    default_timezone: str,
    coaches: dict[str, int],
    errors: list[LineError],
    now: datetime | None = None,
) -> _ParticipantRow | None:
    problems: list[str] = []
    for name in PARTICIPANT_REQUIRED:
        if not values.get(name):
            problems.append(f"{name}: is required")
    external_id = values.get("external_id", "")
    if len(external_id) > 64:
        problems.append("external_id: is longer than 64 characters")
    first_name = values.get("first_name", "")
    if len(first_name) > 80:
        problems.append("first_name: is longer than 80 characters")
    phone = ""
    if values.get("phone"):
        try:
            phone = normalize_phone(values["phone"])
        except PhoneError as exc:
            problems.append(f"phone: {exc}")
    release = None
    if values.get("release_date"):
        try:
            release = date.fromisoformat(values["release_date"])
        except ValueError:
            problems.append(
                f"release_date: {values['release_date']!r} is not a date like 2026-03-14"
            )
    zone = values.get("timezone") or default_timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone: {zone!r} is not an IANA time zone like America/Chicago")
    language = (values.get("language") or "en").lower()
    if language not in LANGUAGES:
        problems.append(f"language: {language!r} is not one of {', '.join(LANGUAGES)}")
    channel = (values.get("channel") or "sms").lower()
    if channel not in CHANNELS:
        problems.append(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    coach_email = (values.get("coach_email") or "").lower()
    coach_id = None
    if coach_email:
        coach_id = coaches.get(coach_email)
        if coach_id is None:
            problems.append(f"coach_email: no active staff user with email {coach_email!r}")
    consent_source, consent_date = _check_consent(values, zone, now, problems)
    errors.extend(LineError(line, p) for p in problems)
    if problems or release is None:
        return None
    return _ParticipantRow(
        line=line,
        external_id=external_id,
        first_name=first_name,
        phone=phone,
        release_date=release,
        timezone=zone,
        language=language,
        channel=channel,
        coach_id=coach_id,
        coach_given=bool(coach_email),
        consent_source=consent_source,
        consent_date=consent_date,
    )


def _check_consent(
    values: dict[str, str], zone: str, now: datetime | None, problems: list[str]
) -> tuple[str | None, date | None]:
    """The optional `consent_source` (how consent was given) and `consent_date` (ISO date,
    not in the future in the person's zone, only with a source)."""
    source = " ".join((values.get("consent_source") or "").split()) or None
    if source is not None and len(source) > MAX_CONSENT_SOURCE:
        problems.append(f"consent_source: is longer than {MAX_CONSENT_SOURCE} characters")
    raw = values.get("consent_date") or ""
    given_on = None
    if raw:
        try:
            given_on = date.fromisoformat(raw)
        except ValueError:
            problems.append(f"consent_date: {raw!r} is not a date like 2026-03-14")
    if given_on is not None and source is None:
        problems.append(
            "consent_date: give consent_source too (how consent was given, e.g. "
            "'signed enrolment form')"
        )
    if given_on is not None and now is not None:
        try:
            today = now.astimezone(ZoneInfo(zone)).date()
        except (ZoneInfoNotFoundError, ValueError):
            today = now.date()
        if given_on > today:
            problems.append(f"consent_date: {raw!r} is in the future")
    return source, given_on


def _check_duplicates(rows: list[_ParticipantRow], errors: list[LineError]) -> None:
    seen_ids: dict[str, int] = {}
    seen_phones: dict[str, int] = {}
    for row in rows:
        if row.external_id in seen_ids:
            errors.append(
                LineError(
                    row.line,
                    f"external_id: {row.external_id!r} is also on line {seen_ids[row.external_id]}",
                )
            )
        else:
            seen_ids[row.external_id] = row.line
        if row.phone in seen_phones:
            errors.append(
                LineError(
                    row.line, f"phone: the same number is also on line {seen_phones[row.phone]}"
                )
            )
        else:
            seen_phones[row.phone] = row.line


# The checked values of one participant: the importer's rows, and the dashboard's form.
ParticipantFields = _ParticipantRow


def check_participant_values(
    values: dict[str, str],
    *,
    default_timezone: str,
    coaches: dict[str, int],
    now: datetime | None = None,
) -> tuple[ParticipantFields | None, list[str]]:
    """One participant's values checked exactly as a CSV row is (the dashboard's form uses it,
    so a coordinator reads the importer's messages): the checked fields, or the problems as
    `column: why`. Uniqueness against the database is the caller's."""
    errors: list[LineError] = []
    row = _check_participant_row(0, values, default_timezone, coaches, errors, now)
    return row, [error.message for error in errors]


def import_participants(
    session: Session,
    stream: TextIO,
    *,
    now: datetime,
    default_timezone: str,
    recorded_by: str,
    progress: Progress | None = None,
    filename: str | None = None,
    recorded_by_id: int | None = None,
) -> ImportSummary:
    """Validate every row, then upsert by external_id in the caller's transaction.

    Consent: a new person's consent is recorded with the row's `consent_source` and
    `consent_date`, or, without a source, as asserted by this import (`filename`, who ran it:
    `recorded_by_id` and `recorded_by`, and when). A re-imported person with a source not on
    file yet gets it recorded (counted as updated)."""
    parsed = _read_csv(stream, PARTICIPANT_REQUIRED)
    coaches = {
        email: uid
        for email, uid in session.execute(select(User.email, User.id).where(User.active.is_(True)))
    }
    errors: list[LineError] = []
    rows = [
        row
        for line, values in parsed.rows
        if (row := _check_participant_row(line, values, default_timezone, coaches, errors, now))
        is not None
    ]
    _check_duplicates(rows, errors)
    existing = {p.external_id: p for p in session.scalars(select(Participant))}
    phone_owner = {p.phone: p.external_id for p in existing.values()}
    for row in rows:
        owner = phone_owner.get(row.phone)
        if owner is not None and owner != row.external_id:
            errors.append(
                LineError(row.line, f"phone: the number already belongs to participant {owner!r}")
            )
    if errors:
        raise ImportFailed(sorted(errors, key=lambda e: e.line))

    summary = ImportSummary()
    recorder = consent.Recorder(
        method="import", user_id=recorded_by_id, label=recorded_by, import_file=filename
    )
    on_file = consent.latest_evidence_of(
        session,
        [
            existing[row.external_id].id
            for row in rows
            if row.consent_source and row.external_id in existing
        ],
    )
    new_rows: list[dict[str, Any]] = []
    new_evidence: dict[str, consent.Evidence] = {}  # external_id -> evidence
    for done, row in enumerate(rows, start=1):
        current = existing.get(row.external_id)
        if current is None:
            new_rows.append(_new_participant_values(row, now, recorded_by))
            new_evidence[row.external_id] = row.evidence
        else:
            evidence_added = consent.record_evidence(
                session,
                current,
                row.evidence,
                now=now,
                recorder=recorder,
                current=on_file.get(current.id),
            )
            _update_participant(current, row, now, summary, evidence_added=evidence_added)
        if progress is not None:
            progress(done)
    if new_rows:
        created = session.execute(
            insert(Participant).returning(Participant.id, Participant.external_id), new_rows
        ).all()
        consent.record_consent(
            session,
            [(pid, new_evidence[external_id]) for pid, external_id in created],
            now=now,
            recorder=recorder,
        )
        summary.created = len(created)
    audit.record(
        session,
        now=now,
        action="import.participants",
        actor=recorded_by,
        detail={
            "created": summary.created,
            "updated": summary.updated,
            "replanned": summary.replanned,
        },
    )
    session.flush()
    return summary


def _new_participant_values(
    row: _ParticipantRow, now: datetime, recorded_by: str
) -> dict[str, Any]:
    return {
        "external_id": row.external_id,
        "first_name": row.first_name,
        "phone": row.phone,
        "channel": row.channel,
        "timezone": row.timezone,
        "language": row.language,
        "release_date": row.release_date,
        "coach_id": row.coach_id,
        "status": "active",
        "consent_at": now,
        "consent_method": "import",
        "consent_recorded_by": recorded_by,
        "enrolled_at": now,
        "plan_version": 1,
        "created_at": now,
        "updated_at": now,
    }


def _update_participant(
    p: Participant,
    row: _ParticipantRow,
    now: datetime,
    summary: ImportSummary,
    *,
    evidence_added: bool = False,
) -> None:
    changes = {
        "first_name": row.first_name,
        "phone": row.phone,
        "channel": row.channel,
        "timezone": row.timezone,
        "language": row.language,
        "release_date": row.release_date,
    }
    if row.coach_given:
        changes["coach_id"] = row.coach_id
    changed = {k: v for k, v in changes.items() if getattr(p, k) != v}
    if not changed:
        if evidence_added:
            summary.updated += 1
        else:
            summary.unchanged += 1
        return
    if "release_date" in changed or "timezone" in changed:
        # The planner treats contacts of an older plan version as superseded, and plans the
        # new ones from this moment (Re-planning).
        mark_for_replan(p, now)
        summary.replanned += 1
    for key, value in changed.items():
        setattr(p, key, value)
    p.updated_at = now
    summary.updated += 1


# --- appointments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _AppointmentRow:
    line: int
    participant: Participant
    kind: str
    starts_at: datetime
    location: str | None
    source_id: str | None


def parse_appointment_time(value: str, zone: ZoneInfo) -> datetime:
    """Local ISO date-time in the participant's zone, or with an explicit offset; UTC out."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if parsed.tzinfo is None:
        return local_to_utc(parsed, zone)
    return local_to_utc(parsed, zone)


def import_appointments(
    session: Session,
    stream: TextIO,
    *,
    now: datetime,
    recorded_by: str,
    progress: Progress | None = None,
) -> ImportSummary:
    parsed = _read_csv(stream, APPOINTMENT_REQUIRED)
    participants = {p.external_id: p for p in session.scalars(select(Participant))}
    policy = location_policy(session)
    errors: list[LineError] = []
    warnings: list[LineError] = []
    rows: list[_AppointmentRow] = []
    seen_sources: dict[str, int] = {}
    for line, values in parsed.rows:
        row = _check_appointment_row(
            line, values, participants, seen_sources, errors, policy, warnings
        )
        if row is not None:
            rows.append(row)
    existing = {
        a.source_id: a
        for a in session.scalars(select(Appointment).where(Appointment.source_id.is_not(None)))
    }
    for row in rows:
        current = existing.get(row.source_id) if row.source_id else None
        if current is not None and current.participant_id != row.participant.id:
            errors.append(
                LineError(
                    row.line, f"appointment_id: {row.source_id!r} belongs to another participant"
                )
            )
    if errors:
        raise ImportFailed(sorted(errors, key=lambda e: e.line))

    summary = ImportSummary(warnings=warnings)
    for done, row in enumerate(rows, start=1):
        _upsert_appointment(session, row, existing, now, summary)
        if progress is not None:
            progress(done)
    audit.record(
        session,
        now=now,
        action="import.appointments",
        actor=recorded_by,
        # Lines only, never a place: the audit log holds no text that could be texted.
        detail={
            "created": summary.created,
            "updated": summary.updated,
            "places_withheld_lines": [w.line for w in warnings],
        },
    )
    session.flush()
    return summary


def _check_appointment_row(
    line: int,
    values: dict[str, str],
    participants: dict[str, Participant],
    seen_sources: dict[str, int],
    errors: list[LineError],
    policy: LocationPolicy,
    warnings: list[LineError],
) -> _AppointmentRow | None:
    problems: list[str] = []
    for name in APPOINTMENT_REQUIRED:
        if not values.get(name):
            problems.append(f"{name}: is required")
    participant = participants.get(values.get("external_id", ""))
    if values.get("external_id") and participant is None:
        problems.append(f"external_id: no participant {values['external_id']!r}")
    kind = values.get("kind", "").lower()
    if kind and kind not in APPOINTMENT_KINDS:
        problems.append(f"kind: {kind!r} is not one of {', '.join(APPOINTMENT_KINDS)}")
    starts_at = None
    if values.get("starts_at") and participant is not None:
        try:
            starts_at = parse_appointment_time(values["starts_at"], ZoneInfo(participant.timezone))
        except ValueError:
            problems.append(
                f"starts_at: {values['starts_at']!r} is not a date-time like 2026-03-14T09:30"
            )
    location = values.get("location") or None
    if location and len(location) > 200:
        problems.append("location: is longer than 200 characters")
    place = check_place(location, policy)
    if place is not None:
        # The same sensitive-word rules as the templates (bot/services/locations.py).
        if place.refused:
            problems.append(f"location: {location!r} {place.message}")
        else:
            who = values.get("external_id", "")
            warnings.append(LineError(line, f"location: {location!r} ({who}) {place.message}"))
    source_id = values.get("appointment_id") or None
    if source_id:
        if source_id in seen_sources:
            problems.append(
                f"appointment_id: {source_id!r} is also on line {seen_sources[source_id]}"
            )
        else:
            seen_sources[source_id] = line
    errors.extend(LineError(line, p) for p in problems)
    if problems or participant is None or starts_at is None:
        return None
    return _AppointmentRow(line, participant, kind, starts_at, location, source_id)


def _upsert_appointment(
    session: Session,
    row: _AppointmentRow,
    existing: dict[str | None, Appointment],
    now: datetime,
    summary: ImportSummary,
) -> None:
    current = existing.get(row.source_id) if row.source_id else None
    if current is None and row.source_id is None:
        # Without an id, an identical appointment already on file is the same appointment.
        current = session.scalars(
            select(Appointment).where(
                Appointment.participant_id == row.participant.id,
                Appointment.kind == row.kind,
                Appointment.starts_at == row.starts_at,
            )
        ).first()
        if current is not None:
            summary.unchanged += 1
            return
    if current is None:
        session.add(
            Appointment(
                participant_id=row.participant.id,
                kind=row.kind,
                starts_at=row.starts_at,
                location=row.location,
                source_id=row.source_id,
                status="scheduled",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        summary.created += 1
        return
    moved = current.starts_at != row.starts_at
    if not moved and current.kind == row.kind and current.location == row.location:
        summary.unchanged += 1
        return
    if moved:
        # A moved appointment is a new appointment for the reminders: confirmations of the
        # old time no longer count, and reminders planned for it are superseded.
        current.version += 1
        current.status = "scheduled"
        current.responded_at = None
        summary.replanned += 1
    current.kind, current.location, current.starts_at = row.kind, row.location, row.starts_at
    current.updated_at = now
    summary.updated += 1
