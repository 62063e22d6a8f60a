"""An appointment's place is texted only when the program's `locations` setting includes it
and it holds no sensitive word (seen through look-alike letters)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config import Config
from bot.models import Appointment
from bot.services.settings import DEFAULT_SETTINGS
from bot.services.templates import message_context

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
