"""The last line of defence: a reminder never texts a place with a sensitive word, however the
place got in (imported before the rule, edited in the database), and never at all when the
program leaves places out. The log names the appointment, never the place or the body."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Appointment
from bot.services.settings import DEFAULT_SETTINGS, set_setting
from bot.transport.simulated import SimulatedTransport
from scheduler.tick import tick
from tests.factories import make_appointment, make_participant
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
APPOINTMENT_AT = utc("2026-03-20T18:00:00Z")  # 14:00 EDT
DAY_BEFORE = utc("2026-03-19T14:05:00Z")  # 10:05 EDT: the 1-day reminder is due


def _reminder_body(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
    location: str | None,
    *,
    language: str = "en",
) -> tuple[str, int]:
    with sessions.begin() as session:
        person = make_participant(
            session,
            ENROLLED,
            release_date=date(2026, 6, 1),
            enrolled_at=ENROLLED,
            language=language,
            timezone="America/New_York",
        )
        appointment = make_appointment(session, person, APPOINTMENT_AT, ENROLLED)
        appointment_id = appointment.id
    tick(sessions, transport, config, ENROLLED, rate_limited=False)  # plans the reminders
    with sessions.begin() as session:
        # Stored as the database holds it (an old import, a direct edit): no check on the way in.
        row = session.get(Appointment, appointment_id)
        assert row is not None
        row.location = location
    sent_before = len(transport.sent)
    tick(sessions, transport, config, DAY_BEFORE, rate_limited=False)
    [reminder] = transport.sent[sent_before:]
    return reminder.body, appointment_id


@pytest.mark.parametrize(
    "location", ["County Cоurt Room 3", "C0urt", "P.O. office", "prob@tion dept"]
)
def test_a_sensitive_place_already_in_the_database_goes_out_as_the_neutral_phrase(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
    location: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        body, appointment_id = _reminder_body(sessions, transport, config, location)
    assert "the place you were given" in body
    assert location not in body
    withheld = [
        r.getMessage() for r in caplog.records if "reminder.place_withheld" in r.getMessage()
    ]
    assert withheld == [
        f'{{"appointment_id": {appointment_id}, "event": "reminder.place_withheld"}}'
    ]
    assert all(location not in r.getMessage() for r in caplog.records)


def test_in_spanish_the_neutral_phrase_is_spanish(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    body, _ = _reminder_body(sessions, transport, config, "Corte del condado", language="es")
    assert "en el lugar que te indicaron" in body and "Corte" not in body


def test_a_neutral_place_is_texted_as_written(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    body, _ = _reminder_body(sessions, transport, config, "Main St Library, room 2")
    assert "Main St Library, room 2" in body


def test_a_program_that_leaves_places_out_never_texts_one(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    with sessions.begin() as session:
        value = {**DEFAULT_SETTINGS["locations"], "include_in_reminders": False}
        set_setting(session, "locations", value, now=ENROLLED, user_id=None)
    body, _ = _reminder_body(sessions, transport, config, "Main St Library, room 2")
    assert "Main St Library" not in body and "the place you were given" in body
