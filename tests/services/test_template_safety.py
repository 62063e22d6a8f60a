"""Safe templates (issue 17.7): the editor refuses a crisis reply without 988 and 911 (Spanish:
also AYUDA), HELP without the program phone and 988, and an opt-out confirmation that does not
say how to start again, and says what is missing."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Template
from bot.services.template_safety import missing_content, rule_for
from bot.services.templates import (
    TemplateRefused,
    preview,
    restore_version,
    save_template,
    seed_default_templates,
)
from messages.defaults import default_templates
from tests.factories import make_user


def _template(session: Session, key: str, language: str) -> Template:
    return session.scalars(
        select(Template).where(Template.key == key, Template.language == language)
    ).one()


@pytest.mark.parametrize(
    ("key", "language", "body", "missing"),
    [
        ("crisis", "en", "Thanks {{ first_name }}, talk soon.", ["988", "911"]),
        ("crisis", "en", "Call or text 988 any time.", ["911"]),
        ("crisis", "en", "Call 19880 or 9110.", ["988", "911"]),
        ("crisis", "es", "Llama al 988. Si estás en peligro, llama al 911.", ["AYUDA"]),
        ("crisis_overdose", "en", "Call 911 now.", ["988"]),
        ("help", "en", "Call 988 any time.", ["the program phone"]),
        ("help", "es", "Llama al {{ program_phone }}.", ["988"]),
        ("opt_out_confirm", "en", "Sounds good!", ["how to start again"]),
        ("opt_out_confirm", "es", "Listo, ya no te escribiremos.", ["how to start again"]),
    ],
)
def test_a_body_without_what_its_reply_must_say_is_refused_naming_it(
    key: str, language: str, body: str, missing: list[str]
) -> None:
    with pytest.raises(TemplateRefused) as refused:
        preview_or_raise(key, language, body)
    reason = refused.value.reason
    assert reason.startswith("Missing: ")
    for label in missing:
        assert label in reason
    assert refused.value.line is None  # the whole body, not one place in it


def preview_or_raise(key: str, language: str, body: str) -> None:
    result = preview(key, language, body)
    if result.error is not None:
        raise result.error


def test_every_shipped_default_is_safe() -> None:
    checked = 0
    for (key, language), body in default_templates().items():
        assert missing_content(key, language, body) is None, (key, language)
        checked += rule_for(key) is not None
    assert checked >= 6  # crisis, help, opt-out in two languages each


def test_spacing_and_case_do_not_matter() -> None:
    assert missing_content("help", "en", "Call {{program_phone}} or 988.") is None
    assert missing_content("opt_out_confirm", "en", "Done. Reply start to come back.") is None
    assert missing_content("opt_out_confirm", "en", "Done. Text UNSTOP to come back.") is None


def test_new_crisis_keys_are_covered_by_the_prefix() -> None:
    for key in ("crisis", "crisis_overdose", "crisis_other", "crisis_violence", "crisis.es"):
        rule = rule_for(key)
        assert rule is not None and rule.prefix == "crisis"
    assert rule_for("coach_page") is None and rule_for("checkin.1") is None


def test_the_coordinators_unsafe_crisis_and_opt_out_texts_are_not_saved(
    session: Session, now: datetime
) -> None:
    """The exact texts from issue 17: nothing is stored, the current version stays."""
    seed_default_templates(session, now)
    editor = make_user(session, now, role="coordinator")
    for key, body in (
        ("crisis", "Thanks {{ first_name }}, talk soon."),
        ("opt_out_confirm", "Sounds good!"),
    ):
        template = _template(session, key, "en")
        with pytest.raises(TemplateRefused, match="Missing"):
            save_template(session, template, body, user_id=editor.id, now=now)
        assert template.version == 1 and template.body != body


def test_an_unsafe_old_version_cannot_be_restored(session: Session, now: datetime) -> None:
    from bot.models import TemplateVersion

    seed_default_templates(session, now)
    template = _template(session, "help", "en")
    session.add(
        TemplateVersion(template_id=template.id, version=5, body="Call us.", created_at=now)
    )
    session.flush()
    with pytest.raises(TemplateRefused, match="Missing"):
        restore_version(session, template, 5, user_id=None, now=now)
