from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.render import (
    ALLOWED_PLACEHOLDERS,
    APPOINTMENT_PLACEHOLDERS,
    MAX_BODY_CHARS,
    PARTICIPANT_PLACEHOLDERS,
    STAFF_PLACEHOLDERS,
    TemplateError,
    allowed_placeholders_for,
    render_template,
    sample_context,
    validate_template,
)


def test_allowed_placeholders_are_the_seven_documented_names_with_descriptions() -> None:
    assert set(ALLOWED_PLACEHOLDERS) == {
        "first_name",
        "coach_first_name",
        "program_name",
        "program_phone",
        "appointment_date",
        "appointment_time",
        "appointment_place",
    }
    assert all(description.strip() for description in ALLOWED_PLACEHOLDERS.values())


@pytest.mark.parametrize(
    "body",
    [
        "Hi {{ first_name }}, it's {{ coach_first_name }}.",
        "{{first_name}}",
        "{{- first_name -}} and {{+ program_name }}",
        "Call {{ program_phone }} about {{ appointment_date }} {{ appointment_time }}",
        "Line one\nLine two {{ appointment_place }}",
        "Plain text with no placeholders at all",
        "Text {# a comment for coordinators #} more text",
        "{% raw %}{{ shown literally }}{% endraw %} then {{ first_name }}",
        "Braces alone are fine: { } and a 50% discount",
    ],
)
def test_plain_text_and_allowed_placeholders_validate(body: str) -> None:
    validate_template(body)


@pytest.mark.parametrize(
    ("body", "reason_part"),
    [
        ("{{ ''.__class__ }}", "attribute and item access"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "calls are not allowed"),
        ("{{ cycler.__init__.__globals__ }}", "attribute and item access"),
        ("{{ first_name['x'] }}", "attribute and item access"),
        ("{{ first_name.upper() }}", "calls are not allowed"),
        ("{{ first_name|attr('x') }}", "filters such as '|attr'"),
        ("{{ first_name|upper }}", "filters such as '|upper'"),
        ("{{ range(10) }}", "calls are not allowed"),
        ("{{ 'text' }}", "only a placeholder name"),
        ("{{ first_name ~ program_name }}", "only a plain placeholder"),
        ("{{ first_name if 1 else 2 }}", "only a plain placeholder"),
        ("{% include 'secrets.txt' %}", "'{% include %}' statements are not allowed"),
        ("{% import 'x' as y %}", "'{% import %}' statements are not allowed"),
        ("{% from 'x' import y %}", "'{% from %}' statements are not allowed"),
        ("{% for x in [1] %}{{ first_name }}{% endfor %}", "'{% for %}' statements"),
        ("{% if first_name %}hi{% endif %}", "'{% if %}' statements"),
        ("{% set x = 1 %}", "'{% set %}' statements"),
        ("{% macro m() %}x{% endmacro %}", "'{% macro %}' statements"),
        ("{% extends 'base' %}", "'{% extends %}' statements"),
        ("{%- with x = 1 %}{% endwith %}", "'{% with %}' statements"),
    ],
)
def test_sandbox_escapes_and_anything_but_plain_placeholders_are_refused(
    body: str, reason_part: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        validate_template(body)
    assert reason_part in caught.value.reason
    assert caught.value.line == 1
    assert caught.value.column == 1


@pytest.mark.parametrize(
    ("body", "name", "line", "column"),
    [
        ("{{ diagnosis }}", "diagnosis", 1, 1),
        ("Hi {{ first_name }}, your {{ diagnosis }}", "diagnosis", 1, 27),
        ("Hi {{ first_name }},\n    see {{ court_case }} soon", "court_case", 2, 9),
        ("a\r\nb\r\n{{x}}", "x", 3, 1),
        ("{# {{ hidden }} #}\n{{ nope }}", "nope", 2, 1),
        ('{{ first_name }}{% raw %}{{ "}}" }}{% endraw %}{{ zz }}', "zz", 1, 48),
    ],
)
def test_unknown_placeholder_is_named_with_line_and_column(
    body: str, name: str, line: int, column: int
) -> None:
    with pytest.raises(TemplateError) as caught:
        validate_template(body)
    error = caught.value
    assert error.reason == f"unknown placeholder '{name}'"
    assert (error.line, error.column) == (line, column)
    assert str(error) == f"line {line}, column {column}: unknown placeholder '{name}'"


def test_refusal_position_points_at_the_offending_tag_not_an_earlier_one() -> None:
    body = "Hi {{ first_name }}\nhere {{ first_name }} and {{ first_name.__class__ }}"
    with pytest.raises(TemplateError) as caught:
        validate_template(body)
    assert (caught.value.line, caught.value.column) == (2, 27)


def test_statement_refusal_points_at_its_block_tag() -> None:
    with pytest.raises(TemplateError) as caught:
        validate_template("Hi {{ first_name }}\n\n  {% for x in y %}{% endfor %}")
    assert (caught.value.line, caught.value.column) == (3, 3)


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("Hi {{ first_name", 1),
        ("Hi\nthere\n{{ first_name }", 3),
        ("{{ }}", 1),
        ("line one\n{% endfor %}", 2),
        ("{% nonsense %}", 1),
    ],
)
def test_syntax_error_is_reported_with_its_line(body: str, line: int) -> None:
    with pytest.raises(TemplateError) as caught:
        validate_template(body)
    assert caught.value.reason.startswith("template syntax error")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}")


@pytest.mark.parametrize("body", ["", "   ", "\n\t ", "{# only a comment #}"])
def test_empty_template_is_refused(body: str) -> None:
    with pytest.raises(TemplateError, match="empty"):
        validate_template(body)


def test_template_at_the_length_limit_is_accepted_and_one_over_is_refused() -> None:
    validate_template("x" * MAX_BODY_CHARS)
    with pytest.raises(TemplateError, match="1601 characters long; the limit is 1600"):
        validate_template("x" * (MAX_BODY_CHARS + 1))


def test_rendered_text_over_the_limit_is_refused() -> None:
    body = "x" * (MAX_BODY_CHARS - 20) + " {{ first_name }}"
    assert render_template(body, {"first_name": "Al"}).endswith(" Al")
    with pytest.raises(TemplateError, match="with its placeholders filled in"):
        render_template(body, {"first_name": "A" * 40})


def test_render_fills_placeholders_and_strips_surrounding_whitespace() -> None:
    body = "\n  Hi {{ first_name }}, it's {{ coach_first_name }}.  \n"
    assert render_template(body, {"first_name": "Maria", "coach_first_name": "Luis"}) == (
        "Hi Maria, it's Luis."
    )


def test_render_does_not_evaluate_template_syntax_inside_values() -> None:
    context = {"first_name": "{{ program_name }}{% include 'x' %}"}
    assert render_template("Hi {{ first_name }}", context) == (
        "Hi {{ program_name }}{% include 'x' %}"
    )


def test_render_does_not_escape_html_characters() -> None:
    assert render_template("{{ first_name }}", {"first_name": "Ann & <Bo>"}) == "Ann & <Bo>"


def test_render_refuses_a_placeholder_missing_from_the_context() -> None:
    with pytest.raises(TemplateError, match="no value for placeholder 'coach_first_name'"):
        render_template("Hi {{ first_name }}, {{ coach_first_name }}", {"first_name": "Maria"})


def test_render_ignores_unused_context_keys() -> None:
    assert render_template("Hi", {"first_name": "x", "something_else": "y"}) == "Hi"


def test_render_refuses_a_message_that_is_empty_once_filled_in() -> None:
    with pytest.raises(TemplateError, match="empty"):
        render_template("  {{ first_name }} ", {"first_name": "  "})


def test_render_validates_first() -> None:
    with pytest.raises(TemplateError, match="unknown placeholder 'diagnosis'"):
        render_template("{{ diagnosis }}", {"diagnosis": "x"})


def test_custom_allowed_set_replaces_the_default() -> None:
    validate_template("{{ severity }}", allowed={"severity"})
    with pytest.raises(TemplateError, match="unknown placeholder 'first_name'"):
        validate_template("{{ first_name }}", allowed={"severity"})
    assert render_template("{{ severity }}!", {"severity": "urgent"}, ["severity"]) == "urgent!"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("welcome", set(PARTICIPANT_PLACEHOLDERS)),
        ("checkin.2", set(PARTICIPANT_PLACEHOLDERS)),
        ("crisis", set(PARTICIPANT_PLACEHOLDERS)),
        ("reminder.medical.1d", set(PARTICIPANT_PLACEHOLDERS) | set(APPOINTMENT_PLACEHOLDERS)),
        ("coach_page", {"severity", "participant_label", "dashboard_url"}),
    ],
)
def test_allowed_placeholders_depend_on_the_template_key(key: str, expected: set[str]) -> None:
    assert set(allowed_placeholders_for(key)) == expected


def test_only_reminders_may_use_appointment_placeholders() -> None:
    body = "See you {{ appointment_date }}"
    validate_template(body, allowed_placeholders_for("reminder.other.2h"))
    with pytest.raises(TemplateError, match="unknown placeholder 'appointment_date'"):
        validate_template(body, allowed_placeholders_for("checkin.1"))


def test_staff_placeholders_are_not_allowed_by_default() -> None:
    assert set(STAFF_PLACEHOLDERS).isdisjoint(ALLOWED_PLACEHOLDERS)
    with pytest.raises(TemplateError, match="unknown placeholder 'dashboard_url'"):
        validate_template("{{ dashboard_url }}")


@pytest.mark.parametrize(
    ("language", "date", "time"),
    [("en", "Tuesday, March 4", "2:30 PM"), ("es", "martes 4 de marzo", "2:30 p. m.")],
)
def test_sample_context_is_a_sample_participant_formatted_for_the_language(
    language: str, date: str, time: str
) -> None:
    context = sample_context(language)
    assert context["first_name"] == "Maria"
    assert context["coach_first_name"] == "Luis"
    assert context["appointment_date"] == date
    assert context["appointment_time"] == time
    assert set(ALLOWED_PLACEHOLDERS) | set(STAFF_PLACEHOLDERS) <= set(context)


def test_sample_context_is_a_fresh_copy() -> None:
    sample_context("en")["first_name"] = "Changed"
    assert sample_context("en")["first_name"] == "Maria"


def test_sample_context_refuses_an_unknown_language() -> None:
    with pytest.raises(ValueError, match="'fr'"):
        sample_context("fr")


def test_template_error_formats_with_whatever_position_is_known() -> None:
    assert str(TemplateError("bad")) == "bad"
    assert str(TemplateError("bad", line=3)) == "line 3: bad"
    assert str(TemplateError("bad", line=3, column=7)) == "line 3, column 7: bad"
    assert isinstance(TemplateError("bad"), ValueError)


TEMPLATE_PIECES = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " ",
        "\n",
        "'",
        '"',
        "\\",
        "first_name",
        "x",
        ".",
        "|",
        "(",
        ")",
        "raw",
        "endraw",
        "for",
        "-",
        "á",
        "diagnosis",
    ]
)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jinja2 decoding odd escapes
@given(st.lists(TEMPLATE_PIECES, max_size=30).map("".join) | st.text(max_size=200))
def test_validation_raises_nothing_but_template_error(body: str) -> None:
    try:
        validate_template(body)
    except TemplateError as error:
        assert error.reason
        assert error.line is None or error.line >= 1
        assert error.column is None or error.column >= 1
    else:
        assert render_template(body, sample_context("en")) == render_template(
            body, sample_context("en")
        )


def test_rendering_reuses_nothing_across_different_bodies_or_placeholder_sets() -> None:
    # Compiled templates are cached by body: an edited body must render as edited, and a body
    # allowed for one key is still refused where its placeholder is not allowed.
    context = {"first_name": "Ana", "program_name": "Next Step"}
    assert render_template("Hi {{ first_name }}", context) == "Hi Ana"
    assert render_template("Hello {{ first_name }}", context) == "Hello Ana"
    assert render_template("Hi {{ first_name }}", context, allowed={"first_name"}) == "Hi Ana"
    with pytest.raises(TemplateError):
        render_template("Hi {{ first_name }}", context, allowed={"program_name"})


def test_a_refused_template_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(TemplateError):
            render_template("Hi {{ first_name.upper() }}", {"first_name": "Ana"})
