from __future__ import annotations

import pytest

from messages.defaults import (
    APPOINTMENT_KINDS,
    CHECKIN_VARIANTS,
    CRISIS_KEYS,
    LANGUAGES,
    REMINDER_OFFSETS,
    checkin_variant_key,
    crisis_key,
    default_templates,
    describe_key,
    next_appointment_key,
    reminder_key,
    template_keys,
)
from messages.render import allowed_placeholders_for, render_template, sample_context
from messages.segments import count_segments
from messages.sensitive import find_sensitive_terms

DEFAULTS = default_templates()
ALL = sorted(DEFAULTS)
PARTICIPANT_FACING = [(k, lang) for (k, lang) in ALL if k != "coach_page"]


def _render(key: str, language: str, **overrides: str) -> str:
    context = sample_context(language) | overrides
    return render_template(DEFAULTS[(key, language)], context, allowed_placeholders_for(key))


def test_template_keys_are_in_display_order() -> None:
    keys = template_keys()
    assert keys[:5] == ["welcome", "checkin.1", "checkin.2", "checkin.3", "checkin.4"]
    reminders = [f"reminder.{k}.{o}" for k in APPOINTMENT_KINDS for o in REMINDER_OFFSETS]
    assert keys[5 : 5 + len(reminders)] == reminders
    assert keys[5 + len(reminders) :] == [
        "help",
        "opt_out_confirm",
        "opt_in_confirm",
        "crisis",
        "crisis.overdose",
        "crisis.other_in_danger",
        "crisis.violence",
        "unknown_sender",
        "confirm_ack",
        "decline_ack",
        "callback_ack",
        *(f"next_appointment.{k}" for k in APPOINTMENT_KINDS),
        "no_appointment",
        "pause_confirm",
        "resume_confirm",
        "coach_page",
    ]
    assert len(keys) == len(set(keys)) == 5 + 21 + 11 + 4 + 7


def test_there_is_a_default_for_every_key_and_language() -> None:
    assert set(DEFAULTS) == {(k, lang) for k in template_keys() for lang in LANGUAGES}


def test_default_templates_returns_a_fresh_dict() -> None:
    default_templates()[("welcome", "en")] = "changed"
    assert default_templates()[("welcome", "en")] != "changed"


@pytest.mark.parametrize(("key", "language"), ALL)
def test_every_default_validates_and_renders_with_the_sample(key: str, language: str) -> None:
    text = _render(key, language)
    assert "{" not in text and "}" not in text
    assert len(text) <= 480


# The overdose reply answers a person's own words about an overdose, and naming the medicine
# that reverses one can save a life; it is the one default that names a listed word.
SENSITIVE_BY_DESIGN = {
    ("crisis.overdose", "en"): ["naloxone", "narcan"],
    ("crisis.overdose", "es"): ["narcan"],
}


@pytest.mark.parametrize(("key", "language"), ALL)
def test_no_default_contains_a_sensitive_term(key: str, language: str) -> None:
    expected = SENSITIVE_BY_DESIGN.get((key, language), [])
    assert find_sensitive_terms(DEFAULTS[(key, language)]) == expected
    assert find_sensitive_terms(_render(key, language)) == expected


CRISIS_REPLIES = ["crisis", *CRISIS_KEYS.values()]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("key", CRISIS_REPLIES)
def test_every_crisis_reply_names_988_and_911(key: str, language: str) -> None:
    text = _render(key, language)
    assert "988" in text
    assert "911" in text


@pytest.mark.parametrize("key", CRISIS_REPLIES)
def test_spanish_crisis_replies_say_to_text_ayuda_to_988(key: str) -> None:
    assert "AYUDA al 988" in _render(key, "es")


@pytest.mark.parametrize("language", LANGUAGES)
def test_overdose_reply_names_911_first_then_naloxone(language: str) -> None:
    text = _render("crisis.overdose", language)
    assert text.index("911") < text.index("988")
    assert text.index("911") < text.lower().index("nalox")
    assert "Narcan" in text


@pytest.mark.parametrize(
    ("language", "words"),
    [("en", "988 helps people who are worried about someone else too"), ("es", "El 988 también")],
)
def test_reply_about_someone_else_says_988_helps_those_worried_about_another(
    language: str, words: str
) -> None:
    assert words in _render("crisis.other_in_danger", language)


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("self", "crisis"),
        (None, "crisis"),
        ("overdose", "crisis.overdose"),
        ("other_in_danger", "crisis.other_in_danger"),
        ("violence", "crisis.violence"),
        ("something new", "crisis"),
    ],
)
def test_each_kind_of_crisis_has_its_reply_and_anything_else_the_general_one(
    kind: str | None, key: str
) -> None:
    assert crisis_key(kind) == key


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_reply_gives_program_phone_how_to_stop_and_988(language: str) -> None:
    body = DEFAULTS[("help", language)]
    assert "{{ program_name }}" in body
    assert "{{ program_phone }}" in body
    assert "988" in body
    assert ("STOP" if language == "en" else "ALTO") in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_reply_lists_the_self_service_keywords(language: str) -> None:
    body = DEFAULTS[("help", language)]
    words = ("CALL ME", "NEXT", "PAUSE", "RESUME")
    if language == "es":
        # Written without accents (LLÁMAME, PRÓXIMA) to stay GSM-7; either spelling works.
        words = ("LLAMAME", "PROXIMA", "PAUSA", "SEGUIR")
    assert all(word in body for word in words)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", APPOINTMENT_KINDS)
def test_next_appointment_replies_are_neutral_and_give_date_time_place(
    kind: str, language: str
) -> None:
    body = DEFAULTS[(next_appointment_key(kind), language)]
    for placeholder in ("appointment_date", "appointment_time", "appointment_place"):
        assert f"{{{{ {placeholder} }}}}" in body
    assert kind not in body.lower() or kind == "other"


@pytest.mark.parametrize("language", LANGUAGES)
def test_pause_reply_names_the_date_check_ins_start_again(language: str) -> None:
    assert "{{ resume_date }}" in DEFAULTS[("pause_confirm", language)]
    assert "resume_date" not in allowed_placeholders_for("resume_confirm")


@pytest.mark.parametrize("language", LANGUAGES)
def test_welcome_says_who_is_texting_how_often_and_how_to_stop_or_get_help(
    language: str,
) -> None:
    body = DEFAULTS[("welcome", language)]
    for placeholder in ("{{ first_name }}", "{{ coach_first_name }}", "{{ program_name }}"):
        assert placeholder in body
    if language == "en":
        assert all(word in body for word in ("STOP", "HELP", "once a week", "rates may apply"))
    else:
        words = ("ALTO", "AYUDA", "por semana", "tarifas de mensajes y datos")
        assert all(word in body for word in words)


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_sender_reply_points_to_the_program_phone_and_nothing_else(
    language: str,
) -> None:
    body = DEFAULTS[("unknown_sender", language)]
    assert "{{ program_phone }}" in body
    assert "program_name" not in body
    assert "first_name" not in body
    assert len(_render("unknown_sender", language)) <= 160


@pytest.mark.parametrize("language", LANGUAGES)
def test_coach_page_is_neutral_and_uses_only_staff_placeholders(language: str) -> None:
    text = _render(
        "coach_page", language, participant_label="Sam R.", dashboard_url="https://x.test/f/1"
    )
    assert text.startswith("checkin: ")
    assert "urgent" in text and "Sam R." in text and "https://x.test/f/1" in text


def test_english_coach_page_matches_the_design_wording() -> None:
    assert DEFAULTS[("coach_page", "en")] == (
        "checkin: {{ severity }} flag for {{ participant_label }}. "
        "Open the dashboard: {{ dashboard_url }}"
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", APPOINTMENT_KINDS)
def test_reminders_are_neutral_and_give_date_time_place(kind: str, language: str) -> None:
    for offset in REMINDER_OFFSETS:
        body = DEFAULTS[(reminder_key(kind, offset), language)]
        for placeholder in ("appointment_date", "appointment_time", "appointment_place"):
            assert f"{{{{ {placeholder} }}}}" in body
        assert kind not in body.lower() or kind == "other"
        assert "NO" in body


@pytest.mark.parametrize(("key", "language"), PARTICIPANT_FACING)
def test_english_defaults_are_plain_gsm7(key: str, language: str) -> None:
    if language == "en":
        assert count_segments(_render(key, language)).encoding == "GSM-7"


# Spanish bodies that cannot avoid an accented vowel outside GSM-7 (á í ó ú): the crisis reply
# keeps "envía AYUDA al 988" (988's own wording) and "estás", "también". Everything else is GSM-7.
SPANISH_UCS2 = {"crisis", *CRISIS_KEYS.values()}


@pytest.mark.parametrize(("key", "language"), PARTICIPANT_FACING)
def test_spanish_defaults_are_gsm7_except_the_documented_ones(key: str, language: str) -> None:
    if language == "es":
        encoding = count_segments(_render(key, language)).encoding
        assert encoding == ("UCS-2" if key in SPANISH_UCS2 else "GSM-7")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("variant", range(1, CHECKIN_VARIANTS + 1))
def test_check_ins_fit_one_gsm7_segment_even_with_long_names(language: str, variant: int) -> None:
    for first, coach in [("Maria", "Luis"), ("Maximiliana-Beatriz", "Christopherson")]:
        text = _render(f"checkin.{variant}", language, first_name=first, coach_first_name=coach)
        count = count_segments(text)
        assert (count.encoding, count.segments) == ("GSM-7", 1), text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("offset", REMINDER_OFFSETS)
def test_reminders_fit_one_gsm7_segment_with_the_sample(language: str, offset: str) -> None:
    count = count_segments(_render(reminder_key("other", offset), language))
    assert (count.encoding, count.segments) == ("GSM-7", 1)


# Longer by design (consent and safety wording cannot fit 160 characters): segments with the
# sample participant.
MULTI_SEGMENT = {
    ("welcome", "en"): 2,
    ("welcome", "es"): 2,
    ("help", "en"): 2,
    ("help", "es"): 2,
    ("crisis", "en"): 2,
    ("crisis", "es"): 4,
    ("crisis.overdose", "en"): 2,
    ("crisis.overdose", "es"): 4,
    ("crisis.other_in_danger", "en"): 2,
    ("crisis.other_in_danger", "es"): 4,
    ("crisis.violence", "en"): 2,
    ("crisis.violence", "es"): 3,
}


@pytest.mark.parametrize(("key", "language"), PARTICIPANT_FACING)
def test_segment_counts_with_the_sample_are_as_documented(key: str, language: str) -> None:
    expected = MULTI_SEGMENT.get((key, language), 1)
    assert count_segments(_render(key, language)).segments == expected


def test_an_accented_name_makes_a_spanish_check_in_unicode() -> None:
    # Documented consequence: "María" has í, which is not in GSM-7.
    count = count_segments(_render("checkin.1", "es", first_name="María"))
    assert count.encoding == "UCS-2"
    assert count.non_gsm_chars == ("í",)


@pytest.mark.parametrize(
    ("occurrence", "key"),
    [
        (1, "checkin.1"),
        (2, "checkin.2"),
        (3, "checkin.3"),
        (4, "checkin.4"),
        (5, "checkin.1"),
        (8, "checkin.4"),
        (9, "checkin.1"),
        (0, "checkin.4"),
        (-1, "checkin.3"),
    ],
)
def test_check_in_variants_rotate(occurrence: int, key: str) -> None:
    assert checkin_variant_key(occurrence) == key


def test_reminder_key_builds_and_checks_its_parts() -> None:
    assert reminder_key("supervision", "1d") == "reminder.supervision.1d"
    with pytest.raises(ValueError, match="kind"):
        reminder_key("parole", "1d")
    with pytest.raises(ValueError, match="offset"):
        reminder_key("court", "1w")


@pytest.mark.parametrize(
    ("key", "description"),
    [
        ("reminder.supervision.1d", "Reminder 1 day before a supervision appointment"),
        ("reminder.court.3d", "Reminder 3 days before a court appointment"),
        ("reminder.other.2h", "Reminder 2 hours before any other appointment"),
    ],
)
def test_reminder_descriptions_read_plainly(key: str, description: str) -> None:
    assert describe_key(key) == description


def test_every_key_has_a_distinct_description() -> None:
    descriptions = [describe_key(key) for key in template_keys()]
    assert all(d.strip() for d in descriptions)
    assert len(set(descriptions)) == len(descriptions)


@pytest.mark.parametrize("key", ["", "checkin.5", "checkin.0", "reminder.court", "nope"])
def test_describe_key_refuses_unknown_keys(key: str) -> None:
    with pytest.raises(ValueError, match="unknown template key"):
        describe_key(key)
