"""Sensitive appointment places as a coordinator meets them in the dashboard: the setting on
/settings, the appointment form (refused or kept with a warning), the participant page and the
settings page naming the appointments whose place reminders will not say, the import preview's
warnings, and the template preview rendering a typed place as a reminder would."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bot.models import Appointment, Participant, Template
from bot.services.settings import DEFAULT_SETTINGS, get_setting, set_setting
from bot.services.templates import seed_default_templates
from tests.factories import make_appointment, make_participant, make_user
from tests.web.dashboard_helpers import csrf, csrf_from, login

LOOK_ALIKE = "County Cоurt Room 3"  # a Cyrillic о


@pytest.fixture
def world(sessions: sessionmaker[Session], now: datetime) -> Iterator[dict[str, int]]:
    with sessions() as session:
        seed_default_templates(session, now)
        make_user(session, now, role="coordinator", email="cora@example.org", name="Cora C")
        coach = make_user(session, now, role="coach", email="marcus@example.org", name="Marcus L")
        person = make_participant(
            session, now, first_name="Luis", external_id="P-9", language="es", coach_id=coach.id
        )
        reminder = session.scalars(
            select(Template.id).where(
                Template.key == "reminder.court.1d", Template.language == "es"
            )
        ).one()
        session.commit()
        ids = {"participant": person.id, "reminder": reminder}
    with time_machine.travel(now, tick=False):
        yield ids


def _handling(sessions: sessionmaker[Session], now: datetime, **value: object) -> None:
    with sessions.begin() as session:
        stored = {**DEFAULT_SETTINGS["locations"], **value}
        set_setting(session, "locations", stored, now=now, user_id=None)


def _text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def _appointments(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Appointment)) or 0


def _add(client: FlaskClient, pid: int, location: str) -> TestResponse:
    return client.post(
        f"/participants/{pid}/appointments",
        data={
            "csrf_token": csrf(client, f"/participants/{pid}"),
            "kind": "court",
            "starts_at": "2026-03-10T14:30",
            "location": location,
        },
        follow_redirects=True,
    )


# --- the setting ---------------------------------------------------------------------------


def test_the_settings_page_edits_whether_and_how_reminders_name_places(
    client: FlaskClient, world: dict[str, int], sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    page = client.get("/settings")
    text = _text(page)
    assert '<option value="include" selected>' in text
    assert '<option value="generic" selected>' in text
    form = dict(re.findall(r'name="([a-z_0-9]+)" value="([^"]*)"', page.get_data(as_text=True)))
    form.update(
        ladder_step_1="assigned_coach", place_in_reminders="leave_out", sensitive_place="refuse"
    )
    saved = client.post("/settings", data=form, follow_redirects=True)
    assert saved.status_code == 200 and "Saved." in _text(saved)
    with sessions() as session:
        assert get_setting(session, "locations") == {
            "include_in_reminders": False,
            "sensitive": "refuse",
        }
    assert '<option value="leave_out" selected>' in _text(client.get("/settings"))
    form.update(sensitive_place="shout")
    refused = client.post("/settings", data=form)
    assert refused.status_code == 422 and 'id="sensitive_place-error"' in _text(refused)


# --- the appointment form ------------------------------------------------------------------


@pytest.mark.parametrize("location", [LOOK_ALIKE, "C0urt", "P.O. office", "prob@tion dept"])
def test_a_program_that_refuses_sensitive_places_refuses_the_form_and_saves_nothing(
    client: FlaskClient,
    world: dict[str, int],
    sessions: sessionmaker[Session],
    now: datetime,
    location: str,
) -> None:
    _handling(sessions, now, sensitive="refuse")
    login(client, "marcus@example.org")  # a coach adds appointments too
    page = _text(_add(client, world["participant"], location))
    assert f"Place: “{location}” has a sensitive word" in page
    assert "write a neutral place" in page and "Nothing was saved." in page
    assert _appointments(sessions) == 0


def test_by_default_a_sensitive_place_is_saved_with_a_warning_and_marked_on_the_page(
    client: FlaskClient, world: dict[str, int], sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    page = _text(_add(client, world["participant"], LOOK_ALIKE))
    assert "Appointment added" in page
    assert f"Careful: its place “{LOOK_ALIKE}” has a sensitive word (“court”)" in page
    assert _appointments(sessions) == 1
    # The participant page keeps saying it, in the person's language's neutral phrase.
    again = _text(client.get(f"/participants/{world['participant']}"))
    assert "Reminders will not name this place" in again
    assert "They say “el lugar que te indicaron”." in again
    # So does the settings page, naming the appointment.
    listed = _text(client.get("/settings"))
    section = listed.split('id="withheld-places"')[1]
    assert "Luis (P-9)" in section and "“court”" in section


def test_a_neutral_place_is_saved_without_a_warning(
    client: FlaskClient, world: dict[str, int], sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    page = _text(_add(client, world["participant"], "Main St Library"))
    assert "Appointment added" in page and "Careful: its place" not in page
    assert "Reminders will not name this place" not in page


def test_a_place_that_got_in_before_the_rule_is_named_on_the_coordinators_pages(
    client: FlaskClient, world: dict[str, int], sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        person = session.get(Participant, world["participant"])
        assert person is not None
        make_appointment(session, person, now + timedelta(days=5), now, location="Prob@tion")
    login(client, "cora@example.org")
    section = _text(client.get("/settings")).split('id="withheld-places"')[1]
    assert "Luis (P-9)" in section and "“probation”" in section
    assert "Prob@tion" not in section  # the words, not the place itself


# --- imports ---------------------------------------------------------------------------------

APPOINTMENTS = (
    "external_id,kind,starts_at,location,appointment_id\n"
    "P-9,benefits,2026-04-01T09:00,Main St Library,A-1\n"
    f"P-9,court,2026-04-02T09:00,{LOOK_ALIKE},A-2\n"
)


def _upload(client: FlaskClient, text: str) -> TestResponse:
    return client.post(
        "/imports",
        data={
            "kind": "appointments",
            "file": (io.BytesIO(text.encode()), "appointments.csv"),
            "csrf_token": csrf(client, "/imports"),
        },
        content_type="multipart/form-data",
    )


def test_an_import_previews_the_lines_whose_place_reminders_will_not_name(
    client: FlaskClient, world: dict[str, int], sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    preview = client.get(_upload(client, APPOINTMENTS).headers["Location"])
    page = _text(preview)
    assert "1 line to look at." in page
    assert f"line 3: location: '{LOOK_ALIKE}' (P-9) has a sensitive word (“court”)" in page
    sha = re.search(r'name="sha256" value="([0-9a-f]{64})"', page)
    assert sha is not None
    done = client.post(
        preview.request.path,
        data={"csrf_token": csrf_from(preview), "sha256": sha.group(1)},
        follow_redirects=True,
    )
    after = _text(done)
    assert "Imported appointments" in after
    assert "1 appointment in appointments.csv has a place with a sensitive word" in after
    assert _appointments(sessions) == 2


def test_an_import_into_a_program_that_refuses_names_the_line_and_writes_nothing(
    client: FlaskClient, world: dict[str, int], sessions: sessionmaker[Session], now: datetime
) -> None:
    _handling(sessions, now, sensitive="refuse")
    login(client, "cora@example.org")
    response = _upload(client, APPOINTMENTS)
    assert response.status_code == 422
    page = _text(response)
    assert f"line 3: location: '{LOOK_ALIKE}' has a sensitive word (“court”)" in page
    assert "Nothing was imported" in page and _appointments(sessions) == 0


# --- the template preview ----------------------------------------------------------------


def test_the_template_editor_previews_a_typed_place_as_a_reminder_would(
    client: FlaskClient, world: dict[str, int]
) -> None:
    login(client, "cora@example.org")
    path = f"/templates/{world['reminder']}"
    page = client.get(path, query_string={"place": "C0urt annex"})
    text = _text(page)
    assert 'id="preview-place"' in text and 'value="C0urt annex"' in text
    assert "en el lugar que te indicaron." in text
    assert "The place has a sensitive word (“court”)" in text
    answer = client.post(
        f"{path}/preview",
        json={"body": "Cita en {{ appointment_place }}.", "place": "P.O. office"},
        headers={"X-CSRFToken": csrf_from(page)},
    )
    assert answer.json is not None
    assert answer.json["text"] == "Cita en el lugar que te indicaron."
    assert "sensitive word (“PO”)" in answer.json["place_note"]
    neutral = client.post(
        f"{path}/preview",
        json={"body": "Cita en {{ appointment_place }}.", "place": "Main St Library"},
        headers={"X-CSRFToken": csrf_from(page)},
    )
    assert neutral.json is not None
    assert (neutral.json["text"], neutral.json["place_note"]) == ("Cita en Main St Library.", None)
    odd = client.post(
        f"{path}/preview", json={"body": "x", "place": 3}, headers={"X-CSRFToken": csrf_from(page)}
    )
    assert odd.status_code == 400


def test_the_template_editor_without_a_typed_place_uses_the_sample(
    client: FlaskClient, world: dict[str, int]
) -> None:
    login(client, "cora@example.org")
    text = _text(client.get(f"/templates/{world['reminder']}"))
    assert 'value="120 Main St, Room 4"' in text and "en 120 Main St, Room 4." in text
