"""Message templates stored in the database (coordinators edit them), with the defaults in
messages/defaults.py as the fallback, and the context every participant message is rendered with."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import Appointment, Participant, Template, TemplateVersion, User
from messages.defaults import default_templates
from messages.render import allowed_placeholders_for, render_template

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
_NO_PLACE = {"en": "the place you were given", "es": "el lugar que te indicaron"}
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
    program's name and phone, and an appointment's date, time and place (never its kind)."""
    language = participant.language
    coach = session.get(User, participant.coach_id) if participant.coach_id else None
    context = {
        "first_name": participant.first_name,
        "coach_first_name": coach.first_name if coach else _NO_COACH.get(language, _NO_COACH["en"]),
        "program_name": config.program_name,
        "program_phone": config.program_phone,
    }
    if appointment is not None:
        zone = ZoneInfo(participant.timezone)
        context["appointment_date"] = format_local_date(appointment.starts_at, zone, language)
        context["appointment_time"] = format_local_time(appointment.starts_at, zone, language)
        context["appointment_place"] = appointment.location or _NO_PLACE.get(
            language, _NO_PLACE["en"]
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
