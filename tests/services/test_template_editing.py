"""Coordinators edit templates: every save a checked version with who and when; restore adds a
version; unsafe or unknown placeholders and over-long bodies are refused with a position."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import AuditLog, Template, TemplateVersion
from bot.services.templates import (
    TemplateRefused,
    list_templates,
    list_versions,
    participant_context,
    preview,
    render_message,
    restore_version,
    save_template,
    seed_default_templates,
)
from tests.factories import make_participant, make_user

NEW_ES = (
    "Hola {{ first_name }}, ¿todo bien esta semana? Responde cuando puedas. {{ coach_first_name }}"
)


def _template(session: Session, key: str, language: str) -> Template:
    return session.scalars(
        select(Template).where(Template.key == key, Template.language == language)
    ).one()


def test_saving_a_spanish_checkin_makes_a_version_and_the_participant_gets_it(
    session: Session, now: datetime, config: Config
) -> None:
    seed_default_templates(session, now)
    editor = make_user(session, now, role="coordinator", name="Cora Coordinator")
    coach = make_user(session, now, name="Rosa Diaz")
    participant = make_participant(
        session, now, first_name="Luis", language="es", coach_id=coach.id
    )
    template = _template(session, "checkin.1", "es")

    version = save_template(session, template, NEW_ES, user_id=editor.id, now=now)
    session.commit()

    assert version is not None and version.version == 2
    assert version.created_by_id == editor.id and version.created_at == now
    context = participant_context(session, participant, config)
    assert render_message(session, "checkin.1", "es", context) == (
        "Hola Luis, ¿todo bien esta semana? Responde cuando puedas. Rosa"
    )
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "template.save")).one()
    assert audit.user_id == editor.id
    assert audit.detail == {
        "template_id": template.id,
        "key": "checkin.1",
        "language": "es",
        "from_version": 1,
        "to_version": 2,
    }
    # The English wording is untouched.
    english = render_message(session, "checkin.1", "en", {**context, "first_name": "Luis"})
    assert english.startswith("Hi Luis")


def test_restoring_an_earlier_version_adds_a_new_version_with_its_text(
    session: Session, now: datetime
) -> None:
    seed_default_templates(session, now)
    editor = make_user(session, now, role="coordinator")
    template = _template(session, "checkin.1", "es")
    original = template.body
    save_template(session, template, NEW_ES, user_id=editor.id, now=now)
    later = now + timedelta(minutes=5)

    restored = restore_version(session, template, 1, user_id=editor.id, now=later)
    session.commit()

    assert restored.version == 3 and restored.note == "restored version 1"
    assert template.body == original and template.version == 3
    history = list_versions(session, template)
    assert [(v.version, v.current) for v in history] == [(3, True), (2, False), (1, False)]
    assert history[1].body == NEW_ES
    actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["template.save", "template.restore"]


@pytest.mark.parametrize(
    ("body", "reason_part", "line", "column"),
    [
        ("Hi {{ ''.__class__ }}", "attribute and item access", 1, 4),
        (
            "Hi {{ first_name }},\nyour {{ case_number }} is due",
            "unknown placeholder 'case_number'",
            2,
            6,
        ),
        ("Hi {{ first_name }", "syntax error", 1, None),
        ("{% for x in range(9) %}hi{% endfor %}", "statements are not allowed", 1, 1),
        ("Hi {{ first_name|upper }}", "filters such as '|upper' are not allowed", 1, 4),
        # Appointment details exist only in reminders.
        ("Hi {{ appointment_place }}", "unknown placeholder 'appointment_place'", 1, 4),
    ],
)
def test_unsafe_or_unknown_templates_are_refused_with_reason_and_position(
    session: Session, now: datetime, body: str, reason_part: str, line: int, column: int
) -> None:
    seed_default_templates(session, now)
    template = _template(session, "checkin.1", "es")
    before = template.body

    with pytest.raises(TemplateRefused) as refused:
        save_template(session, template, body, user_id=None, now=now)

    assert reason_part in refused.value.reason
    assert (refused.value.line, refused.value.column) == (line, column)
    assert template.body == before and template.version == 1
    assert session.scalars(select(TemplateVersion).where(TemplateVersion.version > 1)).all() == []


def test_a_body_over_1600_characters_is_refused_at_the_first_character_too_many(
    session: Session, now: datetime
) -> None:
    seed_default_templates(session, now)
    template = _template(session, "welcome", "en")
    body = "a" * 1000 + "\n" + "b" * 700

    with pytest.raises(TemplateRefused) as refused:
        save_template(session, template, body, user_id=None, now=now)

    assert "1701 characters; the limit is 1600" in refused.value.reason
    assert (refused.value.line, refused.value.column) == (2, 600)


def test_saving_the_same_text_adds_no_version(session: Session, now: datetime) -> None:
    seed_default_templates(session, now)
    template = _template(session, "help", "en")
    assert save_template(session, template, template.body + "\r\n", user_id=None, now=now) is None
    assert template.version == 1


def test_reminder_templates_may_use_appointment_placeholders(
    session: Session, now: datetime
) -> None:
    seed_default_templates(session, now)
    template = _template(session, "reminder.court.1d", "en")
    body = "See you {{ appointment_date }} at {{ appointment_time }}, {{ appointment_place }}."
    assert save_template(session, template, body, user_id=None, now=now) is not None


def test_preview_renders_a_sample_participant_and_counts_segments() -> None:
    english = preview("checkin.1", "en", "Hi {{ first_name }}, how are you?")
    assert english.text == "Hi Maria, how are you?"
    assert (english.encoding, english.segments) == ("GSM-7", 1)
    spanish = preview("checkin.1", "es", "Hola {{ first_name }}, ¿cómo estás?")
    assert spanish.text == "Hola Maria, ¿cómo estás?"
    assert spanish.encoding == "UCS-2"
    assert "á" in spanish.non_gsm_chars
    long = preview("checkin.1", "en", "x" * 161)
    assert long.segments == 2


def test_preview_warns_about_sensitive_words_and_reports_errors() -> None:
    warned = preview("checkin.1", "en", "Hi {{ first_name }}, remember your probation visit")
    assert warned.text is not None and warned.sensitive_terms == ["probation"]
    broken = preview("checkin.1", "en", "Hi {{ ''.__class__ }}")
    assert broken.text is None and broken.error is not None
    assert broken.as_json()["ok"] is False
    assert broken.as_json()["error"] == {
        "reason": broken.error.reason,
        "line": 1,
        "column": 4,
    }


def test_list_templates_covers_every_key_and_language_with_a_description(
    session: Session, now: datetime
) -> None:
    seed_default_templates(session, now)
    rows = list_templates(session)
    keys = {(r.key, r.language) for r in rows}
    assert ("checkin.3", "es") in keys and ("reminder.medical.2h", "en") in keys
    assert rows[0].key == "welcome" and rows[0].language == "en"
    assert all(r.description and r.description != r.key for r in rows)
    assert next(r for r in rows if r.key == "checkin.2").description.startswith("Check-in")
