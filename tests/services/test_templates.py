"""Stored templates win over the shipped defaults; contexts carry only neutral facts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import Template, TemplateVersion
from bot.services.templates import (
    participant_context,
    render_message,
    seed_default_templates,
)
from messages.defaults import default_templates
from tests.factories import make_appointment, make_participant, make_user


def test_seeding_stores_every_default_once_as_version_one(session: Session, now: datetime) -> None:
    added = seed_default_templates(session, now)
    assert added == len(default_templates())
    assert seed_default_templates(session, now) == 0
    session.commit()
    assert session.scalar(select(func.count()).select_from(TemplateVersion)) == added


def test_edited_template_is_used_instead_of_the_default(
    session: Session, now: datetime, config: Config
) -> None:
    seed_default_templates(session, now)
    participant = make_participant(session, now, first_name="Luis", language="es")
    row = session.scalars(
        select(Template).where(Template.key == "checkin.1", Template.language == "es")
    ).one()
    row.body = "Hola {{ first_name }}, ¿cómo va todo?"
    context = participant_context(session, participant, config)
    assert render_message(session, "checkin.1", "es", context) == "Hola Luis, ¿cómo va todo?"


def test_without_stored_templates_the_defaults_render(
    session: Session, now: datetime, config: Config
) -> None:
    participant = make_participant(session, now, first_name="Ana")
    text = render_message(
        session, "checkin.1", "en", participant_context(session, participant, config)
    )
    assert "Ana" in text


def test_appointment_context_is_local_and_never_names_the_kind(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now, name="Rosa Diaz")
    participant = make_participant(
        session, now, timezone="America/Chicago", language="es", coach_id=coach.id
    )
    appointment = make_appointment(
        session,
        participant,
        datetime(2026, 3, 10, 15, 30, tzinfo=UTC),
        now,
        kind="court",
        location="100 Main St",
    )
    context = participant_context(session, participant, config, appointment)
    assert context["coach_first_name"] == "Rosa"
    assert context["appointment_date"] == "martes 10 de marzo"
    assert context["appointment_time"] == "10:30"
    assert context["appointment_place"] == "100 Main St"
    assert "court" not in " ".join(context.values()).lower()
