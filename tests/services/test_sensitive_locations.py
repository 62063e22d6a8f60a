"""An appointment's place is texted only when the program's `locations` setting includes it
and it holds no sensitive word (seen through look-alike letters); it is checked with the
template rules where it is entered, in the template preview, and when a reminder renders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import Appointment
from bot.services.locations import (
    LocationPolicy,
    check_place,
    location_policy,
    place_for_text,
    sensitive_words,
    withheld_places,
    withheld_words,
)
from bot.services.settings import DEFAULT_SETTINGS, set_setting
from bot.services.templates import message_context, participant_context, preview
from messages.sensitive import find_sensitive_terms
from tests.factories import make_appointment, make_participant

STARTS = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def _place(
    config: Config, location: str | None, *, include: bool = True, language: str = "en"
) -> str:
    appointment = Appointment(starts_at=STARTS, location=location)
    return message_context(
        config,
        language=language,
        first_name="Sam",
        coach_first_name=None,
        timezone="America/New_York",
        appointment=appointment,
        include_location=include,
    )["appointment_place"]


def test_reminders_include_the_location_by_default() -> None:
    assert DEFAULT_SETTINGS["locations"]["include_in_reminders"] is True


@pytest.mark.parametrize(
    "location", ["County Court Room 3", "cоurt annex", "Prob@tion office", "P.O. building"]
)
def test_a_location_with_a_sensitive_word_is_never_texted(config: Config, location: str) -> None:
    assert _place(config, location) == "the place you were given"
    assert _place(config, location, language="es") == "el lugar que te indicaron"


def test_a_neutral_location_is_texted_as_written(config: Config) -> None:
    assert _place(config, "Main St Library, room 2") == "Main St Library, room 2"


def test_a_program_that_leaves_locations_out_never_texts_one(config: Config) -> None:
    assert _place(config, "Main St Library", include=False) == "the place you were given"


# --- the rules, shared with the templates, through look-alikes -------------------------------

LOOK_ALIKES = ["County Cоurt Room 3", "C0urt", "P.O. office", "prob@tion dept"]


@pytest.mark.parametrize("location", LOOK_ALIKES)
def test_look_alike_letters_and_digits_in_a_place_do_not_hide_its_sensitive_word(
    location: str,
) -> None:
    assert sensitive_words(location)  # the same rules the template editor uses
    assert find_sensitive_terms(location) == sensitive_words(location)
    assert place_for_text(location, "en") == "the place you were given"
    assert place_for_text(location, "es") == "el lugar que te indicaron"


@pytest.mark.parametrize("location", ["County Courtesy Hall", "10 a.m. Main St. office", ""])
def test_innocent_places_have_no_sensitive_word(location: str) -> None:
    assert sensitive_words(location) == []


@pytest.mark.parametrize("location", LOOK_ALIKES)
def test_a_program_that_refuses_sensitive_places_refuses_them_and_says_what_to_do(
    location: str,
) -> None:
    check = check_place(location, LocationPolicy(include_in_reminders=True, sensitive="refuse"))
    assert check is not None and check.refused
    assert "write a neutral place" in check.message


def test_by_default_a_sensitive_place_is_kept_with_a_warning_naming_the_neutral_phrase() -> None:
    check = check_place("County Court Room 3", LocationPolicy())
    assert check is not None and not check.refused
    assert check.words == ["court"]
    assert "“the place you were given”" in check.message
    assert "“el lugar que te indicaron”" in check.message


def test_a_program_that_never_names_places_checks_none() -> None:
    policy = LocationPolicy(include_in_reminders=False, sensitive="refuse")
    assert check_place("County Court Room 3", policy) is None
    assert check_place("Main St Library", LocationPolicy()) is None


# --- the setting, read from the database -----------------------------------------------------


def _store_locations(session: Session, now: datetime, **value: object) -> None:
    set_setting(
        session, "locations", {**DEFAULT_SETTINGS["locations"], **value}, now=now, user_id=None
    )
    session.flush()


def test_the_policy_defaults_to_naming_places_and_keeping_sensitive_ones_generic(
    session: Session,
) -> None:
    assert location_policy(session) == LocationPolicy(
        include_in_reminders=True, sensitive="generic"
    )


def test_an_unknown_stored_handling_falls_back_to_the_default(
    session: Session, now: datetime
) -> None:
    _store_locations(session, now, sensitive="shout")
    assert location_policy(session).sensitive == "generic"


def test_the_reply_to_next_follows_the_programs_choice_to_leave_places_out(
    session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now, language="es")
    appointment = make_appointment(
        session, person, now + timedelta(days=3), now, location="Main St Library"
    )
    assert participant_context(session, person, config, appointment)["appointment_place"] == (
        "Main St Library"
    )
    _store_locations(session, now, include_in_reminders=False)
    assert participant_context(session, person, config, appointment)["appointment_place"] == (
        "el lugar que te indicaron"
    )


def test_the_coordinator_is_shown_upcoming_appointments_whose_place_is_withheld(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now, first_name="Sam", external_id="P-7")
    soon = make_appointment(session, person, now + timedelta(days=2), now, location="C0urt annex")
    make_appointment(session, person, now + timedelta(days=3), now, location="Main St Library")
    make_appointment(session, person, now - timedelta(days=1), now, location="County Court")
    make_appointment(
        session, person, now + timedelta(days=4), now, location="Court", status="cancelled"
    )
    withheld = withheld_places(session, now)
    assert [(w.appointment_id, w.external_id, w.words) for w in withheld] == [
        (soon.id, "P-7", ["court"])
    ]
    assert withheld_words(session, [soon]) == {soon.id: ["court"]}
    _store_locations(session, now, include_in_reminders=False)
    assert withheld_places(session, now) == [] and withheld_words(session, [soon]) == {}


# --- the template preview --------------------------------------------------------------------

REMINDER = "Hi {{ first_name }}: {{ appointment_date }} at {{ appointment_time }}, {{ appointment_place }}."


@pytest.mark.parametrize("place", LOOK_ALIKES)
def test_the_template_preview_renders_a_sensitive_place_as_a_reminder_would_and_says_why(
    place: str,
) -> None:
    shown = preview("reminder.court.1d", "es", REMINDER, place=place)
    assert shown.text is not None and shown.text.endswith(", el lugar que te indicaron.")
    assert place not in shown.text
    assert shown.place_note is not None and "sensitive word" in shown.place_note
    assert shown.as_json()["place_note"] == shown.place_note


def test_the_template_preview_shows_a_neutral_place_as_typed() -> None:
    shown = preview("reminder.court.1d", "en", REMINDER, place="Main St Library")
    assert shown.text is not None and shown.text.endswith(", Main St Library.")
    assert shown.place_note is None


def test_the_template_preview_follows_a_program_that_never_names_places() -> None:
    shown = preview(
        "reminder.court.1d", "en", REMINDER, place="Main St Library", include_place=False
    )
    assert shown.text is not None and shown.text.endswith(", the place you were given.")
    assert shown.place_note is not None and "never name the place" in shown.place_note


def test_a_template_without_a_place_has_no_place_note() -> None:
    assert preview("checkin.1", "en", "Hi {{ first_name }}", place="Court").place_note is None
