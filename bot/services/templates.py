"""Message templates stored in the database (coordinators edit them), with the defaults in
messages/defaults.py as the fallback, and the context every participant message is rendered with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import Appointment, Participant, Template, TemplateVersion, User
from bot.services.audit import record
from bot.services.locations import location_policy, neutral_place, place_for_text, sensitive_words
from bot.services.template_safety import missing_content
from messages.defaults import default_templates, template_keys
from messages.defaults import describe_key as default_describe_key
from messages.render import (
    MAX_BODY_CHARS,
    TemplateError,
    allowed_placeholders_for,
    render_template,
    sample_context,
    validate_template,
)
from messages.segments import count_segments
from messages.sensitive import find_sensitive_terms

_MONTHS_ES = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
]
_DAYS_ES = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]
_NO_COACH = {"en": "your peer coach", "es": "tu coach"}


def current_body(session: Session, key: str, language: str) -> str:
    """The body a message uses now: the stored template, else the shipped default, else English."""
    body = session.scalars(
        select(Template.body).where(Template.key == key, Template.language == language)
    ).first()
    if body is not None:
        return body
    defaults = default_templates()
    if (key, language) in defaults:
        return defaults[(key, language)]
    return defaults[(key, "en")]


def render_message(session: Session, key: str, language: str, context: Mapping[str, str]) -> str:
    return render_template(
        current_body(session, key, language), context, allowed=allowed_placeholders_for(key)
    )


def format_local_date(instant: datetime, zone: ZoneInfo, language: str) -> str:
    local = instant.astimezone(zone)
    if language == "es":
        return f"{_DAYS_ES[local.weekday()]} {local.day} de {_MONTHS_ES[local.month - 1]}"
    return f"{local:%A}, {local:%B} {local.day}"


def format_local_time(instant: datetime, zone: ZoneInfo, language: str) -> str:
    local = instant.astimezone(zone)
    if language == "es":
        return f"{local:%H:%M}"
    hour = local.hour % 12 or 12
    return f"{hour}:{local:%M} {'AM' if local.hour < 12 else 'PM'}"


def participant_context(
    session: Session,
    participant: Participant,
    config: Config,
    appointment: Appointment | None = None,
) -> dict[str, str]:
    """The placeholders a participant's message may use. Only neutral facts: names, the
    program's name and phone, and an appointment's date, time and place (never its kind;
    the place only as the program's `locations` setting allows: bot/services/locations.py)."""
    coach = session.get(User, participant.coach_id) if participant.coach_id else None
    return message_context(
        config,
        language=participant.language,
        first_name=participant.first_name,
        coach_first_name=coach.first_name if coach else None,
        timezone=participant.timezone,
        appointment=appointment,
        # The setting is read only when there is a place to name (one statement less on
        # the webhook's path for the usual appointment without one).
        include_location=(
            location_policy(session).include_in_reminders
            if appointment is not None and appointment.location
            else True
        ),
    )


def message_context(
    config: Config,
    *,
    language: str,
    first_name: str,
    coach_first_name: str | None,
    timezone: str,
    appointment: Appointment | None = None,
    include_location: bool = True,
) -> dict[str, str]:
    """`participant_context` from plain values, for callers that read many people's columns
    at once (the scheduler) instead of loading each Participant and coach.

    The appointment's place is texted only when `include_location` (the program's
    `locations` setting) and when it holds no sensitive word (messages/sensitive.py, which
    sees through look-alike letters): otherwise the neutral "the place you were given"."""
    context = {
        "first_name": first_name,
        "coach_first_name": coach_first_name
        if coach_first_name is not None
        else _NO_COACH.get(language, _NO_COACH["en"]),
        "program_name": config.program_name,
        "program_phone": config.program_phone,
    }
    if appointment is not None:
        zone = ZoneInfo(timezone)
        context["appointment_date"] = format_local_date(appointment.starts_at, zone, language)
        context["appointment_time"] = format_local_time(appointment.starts_at, zone, language)
        context["appointment_place"] = place_for_text(
            appointment.location, language, include=include_location
        )
    return context


def seed_default_templates(session: Session, now: datetime) -> int:
    """Store every shipped default not stored yet, as version 1; never touch edited ones."""
    existing = {(k, lang) for k, lang in session.execute(select(Template.key, Template.language))}
    added = 0
    for (key, language), body in default_templates().items():
        if (key, language) in existing:
            continue
        template = Template(key=key, language=language, body=body, version=1, updated_at=now)
        session.add(template)
        session.flush()
        session.add(
            TemplateVersion(
                template_id=template.id, version=1, body=body, created_at=now, note="default"
            )
        )
        added += 1
    return added


# ---------------------------------------------------------------------------------------------
# Editing (coordinators): Coordinators edit message templates: list, preview, save (every save a version), restore.
#
# A template is data a coordinator writes, so it is checked before it is stored: only plain
# `{{ placeholder }}` of the names allowed for its key (messages/render.py), at most 1,600
# characters. A refusal carries the reason and the line and column, for the editor to point at.
# Every save and restore adds a TemplateVersion (who, when) and an audit row; a restore is a new
# version with the old text, so history only grows.

LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}


class TemplateRefused(ValueError):
    """A body that cannot be saved, with the reason and (when known) where."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{reason}")

    def as_json(self) -> dict[str, object]:
        return {"reason": self.reason, "line": self.line, "column": self.column}


def describe_key(key: str) -> str:
    """What a template is for, in plain language (the shipped catalogue's words)."""
    try:
        return default_describe_key(key)
    except (KeyError, ValueError, IndexError):
        return key


def position_of(body: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index` of `body`."""
    before = body[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def check_body(key: str, body: str, language: str = "en") -> None:
    """Raise TemplateRefused unless `body` may be stored for `key` in `language`: a valid
    template within the length limit that keeps what its kind of reply must say (a crisis
    reply's 988 and 911, HELP's phone and 988, an opt-out's START: template_safety)."""
    if len(body) > MAX_BODY_CHARS:
        line, column = position_of(body, MAX_BODY_CHARS)
        raise TemplateRefused(
            f"the message is {len(body)} characters; the limit is {MAX_BODY_CHARS} "
            f"(shorten it from here on)",
            line,
            column,
        )
    try:
        validate_template(body, allowed_placeholders_for(key))
    except TemplateError as exc:
        raise TemplateRefused(exc.reason, exc.line, exc.column) from None
    missing = missing_content(key, language, body)
    if missing is not None:
        raise TemplateRefused(missing)


@dataclass(frozen=True)
class Preview:
    text: str | None
    error: TemplateRefused | None
    encoding: str | None
    characters: int
    segments: int
    non_gsm_chars: tuple[str, ...]
    sensitive_terms: list[str]
    # Why the preview's place is not the one typed (a sensitive word, or a program that never
    # names places); None when it is texted as typed or the message has no place.
    place_note: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.error is None,
            "text": self.text,
            "error": self.error.as_json() if self.error else None,
            "encoding": self.encoding,
            "characters": self.characters,
            "segments": self.segments,
            "non_gsm_chars": list(self.non_gsm_chars),
            "sensitive_terms": self.sensitive_terms,
            "place_note": self.place_note,
        }


def preview(
    key: str,
    language: str,
    body: str,
    *,
    program: Mapping[str, str] | None = None,
    place: str | None = None,
    include_place: bool = True,
) -> Preview:
    """The body rendered for a sample participant, its SMS cost, and any sensitive word.

    `program` (program_name, program_phone) replaces the sample's made-up program, so the
    preview and its segment count are what this program's participants would really get.
    `place` (a sample or real appointment place the coordinator typed) is rendered as a
    reminder would render it (`place_for_text`, with the program's `include_place`): a place
    with a sensitive word shows as the neutral phrase, and `place_note` says why.

    Sensitive words are looked for in the template as written (a coordinator's own words), not
    in the sample names, so a warning always points at something the coordinator can change.
    """
    sensitive = find_sensitive_terms(body)
    context = {**sample_context(language), **(program or {})}
    note = None
    if "appointment_place" in allowed_placeholders_for(key):
        typed = context["appointment_place"] if place is None else place.strip()
        context["appointment_place"] = place_for_text(typed, language, include=include_place)
        note = _place_note(typed, language, include_place)
    try:
        check_body(key, body, language)
        text = render_template(body, context, allowed_placeholders_for(key))
    except TemplateRefused as exc:
        return Preview(None, exc, None, len(body), 0, (), sensitive, note)
    except TemplateError as exc:
        refused = TemplateRefused(exc.reason, exc.line, exc.column)
        return Preview(None, refused, None, len(body), 0, (), sensitive, note)
    count = count_segments(text)
    return Preview(
        text, None, count.encoding, len(text), count.segments, count.non_gsm_chars, sensitive, note
    )


def _place_note(place: str, language: str, include: bool) -> str | None:
    phrase = f"“{neutral_place(language)}”"
    if not include:
        return f"This program's reminders never name the place: they say {phrase}."
    words = sensitive_words(place)
    if not words:
        return None
    found = "”, “".join(words)
    return (
        f"The place has a sensitive word (“{found}”), so reminders say {phrase} instead of "
        "naming it."
    )


@dataclass(frozen=True)
class TemplateRow:
    id: int
    key: str
    language: str
    language_name: str
    description: str
    body: str
    version: int
    updated_at: datetime
    updated_by: str | None


def _sort_key(key: str) -> tuple[int, str]:
    """The shipped catalogue's order: welcome, check-ins, reminders by kind and offset, replies."""
    order = template_keys()
    return (order.index(key) if key in order else len(order), key)


def list_templates(session: Session) -> list[TemplateRow]:
    """Every stored template, by key then language, with who last changed it."""
    rows = session.execute(
        select(Template, User.name).outerjoin(User, User.id == Template.updated_by_id)
    ).all()
    result = [
        TemplateRow(
            id=t.id,
            key=t.key,
            language=t.language,
            language_name=LANGUAGE_NAMES.get(t.language, t.language),
            description=describe_key(t.key),
            body=t.body,
            version=t.version,
            updated_at=t.updated_at,
            updated_by=name,
        )
        for t, name in rows
    ]
    result.sort(key=lambda r: (_sort_key(r.key), r.language != "en", r.language))
    return result


@dataclass(frozen=True)
class VersionRow:
    version: int
    body: str
    created_at: datetime
    created_by: str | None
    note: str | None
    current: bool


def list_versions(session: Session, template: Template) -> list[VersionRow]:
    """The template's versions, newest first."""
    rows = session.execute(
        select(TemplateVersion, User.name)
        .outerjoin(User, User.id == TemplateVersion.created_by_id)
        .where(TemplateVersion.template_id == template.id)
        .order_by(TemplateVersion.version.desc())
    ).all()
    return [
        VersionRow(
            version=v.version,
            body=v.body,
            created_at=v.created_at,
            created_by=name,
            note=v.note,
            current=v.version == template.version,
        )
        for v, name in rows
    ]


def _new_version(
    session: Session,
    template: Template,
    body: str,
    *,
    user_id: int | None,
    now: datetime,
    note: str,
    action: str,
    actor: str,
) -> TemplateVersion:
    latest = session.scalar(
        select(TemplateVersion.version)
        .where(TemplateVersion.template_id == template.id)
        .order_by(TemplateVersion.version.desc())
        .limit(1)
    )
    number = max(latest or 0, template.version) + 1
    previous = template.version
    version = TemplateVersion(
        template_id=template.id,
        version=number,
        body=body,
        created_at=now,
        created_by_id=user_id,
        note=note,
    )
    session.add(version)
    template.body = body
    template.version = number
    template.updated_at = now
    template.updated_by_id = user_id
    # The audit row names the template and versions, never the body (bodies stay out of logs).
    record(
        session,
        now=now,
        action=action,
        actor=actor,
        user_id=user_id,
        detail={
            "template_id": template.id,
            "key": template.key,
            "language": template.language,
            "from_version": previous,
            "to_version": number,
        },
    )
    session.flush()
    return version


def save_template(
    session: Session,
    template: Template,
    body: str,
    *,
    user_id: int | None,
    now: datetime,
    actor: str = "dashboard",
) -> TemplateVersion | None:
    """Check and store a new body as a new version; None when the text did not change."""
    body = body.replace("\r\n", "\n").strip()
    check_body(template.key, body, template.language)
    if body == template.body:
        return None
    return _new_version(
        session,
        template,
        body,
        user_id=user_id,
        now=now,
        note="edited",
        action="template.save",
        actor=actor,
    )


def restore_version(
    session: Session,
    template: Template,
    version: int,
    *,
    user_id: int | None,
    now: datetime,
    actor: str = "dashboard",
) -> TemplateVersion:
    """Make an earlier version's text current again, as a new version (history only grows).

    The old text is checked again: the allow-list may have changed since it was written.
    """
    old = session.scalars(
        select(TemplateVersion).where(
            TemplateVersion.template_id == template.id, TemplateVersion.version == version
        )
    ).first()
    if old is None:
        raise LookupError(f"template {template.id} has no version {version}")
    check_body(template.key, old.body, template.language)
    return _new_version(
        session,
        template,
        old.body,
        user_id=user_id,
        now=now,
        note=f"restored version {version}",
        action="template.restore",
        actor=actor,
    )
