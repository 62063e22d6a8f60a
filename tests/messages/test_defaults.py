"""The shipped templates: complete, valid, neutral, and safe in a crisis."""

from __future__ import annotations

import pytest

from messages.defaults import (
    LANGUAGES,
    checkin_variant_key,
    default_templates,
    describe_key,
    template_keys,
)
from messages.render import allowed_placeholders_for, render_template, sample_context
from messages.segments import count_segments
from messages.sensitive import find_sensitive_terms

DEFAULTS = default_templates()


def test_every_key_has_a_body_in_every_language() -> None:
    assert set(DEFAULTS) == {(k, lang) for k in template_keys() for lang in LANGUAGES}
    assert all(describe_key(k) for k in template_keys())


@pytest.mark.parametrize(("key", "language"), sorted(DEFAULTS))
def test_default_renders_and_discloses_nothing_sensitive(key: str, language: str) -> None:
    text = render_template(
        DEFAULTS[(key, language)], sample_context(language), allowed_placeholders_for(key)
    )
    assert find_sensitive_terms(text) == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_crisis_reply_names_988_and_911(language: str) -> None:
    body = DEFAULTS[("crisis", language)]
    assert "988" in body and "911" in body
    if language == "es":
        assert "AYUDA al 988" in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_reply_names_program_phone_988_and_how_to_stop(language: str) -> None:
    body = DEFAULTS[("help", language)]
    assert "{{ program_phone }}" in body and "988" in body
    assert ("STOP" if language == "en" else "ALTO") in body


def test_english_check_ins_fit_one_segment() -> None:
    for n in range(1, 5):
        text = render_template(DEFAULTS[(f"checkin.{n}", "en")], sample_context("en"))
        assert count_segments(text).segments == 1, text


def test_check_in_variants_rotate() -> None:
    assert [checkin_variant_key(n) for n in range(1, 7)] == [
        "checkin.1",
        "checkin.2",
        "checkin.3",
        "checkin.4",
        "checkin.1",
        "checkin.2",
    ]
