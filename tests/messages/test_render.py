"""Templates are data: only plain {{ placeholder }} of allowed names renders."""

from __future__ import annotations

import pytest

from messages.render import (
    MAX_BODY_CHARS,
    TemplateError,
    allowed_placeholders_for,
    render_template,
    sample_context,
    validate_template,
)


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ first_name|attr('upper') }}",
        "{{ first_name.upper() }}",
        "{{ first_name['x'] }}",
        "{{ first_name|upper }}",
        "{% include 'x' %}",
        "{% import 'x' as y %}",
        "{% for c in first_name %}{{ c }}{% endfor %}",
        "{% if first_name %}hi{% endif %}",
        "{% set x = 1 %}",
        "{{ lipsum() }}",
        "{{ 7 * 7 }}",
        "{{ 'a' ~ first_name }}",
    ],
)
def test_anything_but_a_plain_placeholder_is_refused(body: str) -> None:
    with pytest.raises(TemplateError):
        validate_template(body)


def test_unknown_placeholder_is_refused_with_name_and_position() -> None:
    with pytest.raises(TemplateError) as caught:
        validate_template("Hi {{ first_name }},\nsee you  {{ diagnosis }}")
    assert caught.value.line == 2 and caught.value.column == 10
    assert "unknown placeholder 'diagnosis'" in str(caught.value)
    assert str(caught.value).startswith("line 2, column 10:")


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateError) as caught:
        validate_template("Hello\n{{ first_name ")
    assert caught.value.line == 2
    assert "syntax error" in caught.value.reason


def test_over_long_and_empty_bodies_are_refused() -> None:
    with pytest.raises(TemplateError, match="limit is 1600"):
        validate_template("x" * (MAX_BODY_CHARS + 1))
    validate_template("x" * MAX_BODY_CHARS)
    with pytest.raises(TemplateError, match="empty"):
        validate_template("  \n")


def test_appointment_placeholders_only_in_reminders() -> None:
    body = "See you {{ appointment_date }}"
    validate_template(body, allowed_placeholders_for("reminder.court.1d"))
    with pytest.raises(TemplateError, match="unknown placeholder 'appointment_date'"):
        validate_template(body, allowed_placeholders_for("checkin.1"))


def test_render_fills_placeholders_and_refuses_missing_values() -> None:
    assert render_template("Hi {{ first_name }}! ", {"first_name": "Ana"}) == "Hi Ana!"
    with pytest.raises(TemplateError, match="missing value"):
        render_template("Hi {{ first_name }}", {})


def test_rendered_text_is_not_escaped_as_html() -> None:
    assert render_template("{{ first_name }}", {"first_name": "Ana & Bo <3"}) == "Ana & Bo <3"


@pytest.mark.parametrize("language", ["en", "es"])
def test_sample_context_renders_every_placeholder(language: str) -> None:
    body = " ".join(f"{{{{ {name} }}}}" for name in allowed_placeholders_for("reminder.court.3d"))
    assert "{{" not in render_template(body, sample_context(language))
