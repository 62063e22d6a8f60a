"""Coordinator pages: messages, settings, reports (and CSV); coaches cannot open them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.models import Participant, PlannedContact, Template
from bot.services.settings import get_setting
from bot.services.templates import seed_default_templates
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import csrf_from, login

COORDINATOR_PAGES = ("/templates", "/settings", "/reports", "/reports.csv")


@pytest.fixture
def seeded(sessions: sessionmaker[Session], now: datetime) -> dict[str, int]:
    with sessions() as session:
        seed_default_templates(session, now)
        coordinator = make_user(
            session, now, role="coordinator", email="cora@example.org", name="Cora C"
        )
        coach = make_user(session, now, role="coach", email="marcus@example.org", name="Marcus Lee")
        spanish = make_participant(
            session, now, first_name="Luis", language="es", coach_id=coach.id
        )
        template_id = session.scalars(
            select(Template.id).where(Template.key == "checkin.1", Template.language == "es")
        ).one()
        session.commit()
        return {
            "coordinator": coordinator.id,
            "coach": coach.id,
            "template": template_id,
            "participant": spanish.id,
        }


def _as_coordinator(client: FlaskClient) -> None:
    assert login(client, "cora@example.org").status_code == 302


@pytest.mark.parametrize("path", [*COORDINATOR_PAGES, "/templates/1"])
def test_coaches_are_refused_every_coordinator_page(
    client: FlaskClient, seeded: dict[str, int], path: str
) -> None:
    login(client, "marcus@example.org")
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", COORDINATOR_PAGES)
def test_signed_out_visitors_are_sent_to_login(
    client: FlaskClient, seeded: dict[str, int], path: str
) -> None:
    response = client.get(path)
    assert response.status_code in (302, 401)


def test_the_message_list_shows_every_key_by_language_in_plain_words(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    _as_coordinator(client)
    page = client.get("/templates").get_data(as_text=True)
    assert "Check-in message, version 1 of 4" in page
    assert "Reminder 2 hours before a court appointment" in page
    assert page.count(">Spanish</a>") == page.count(">English</a>") > 30
    assert f'href="/templates/{seeded["template"]}"' in page


def test_editing_a_template_saves_a_version_and_restoring_brings_the_old_text_back(
    client: FlaskClient, seeded: dict[str, int], sessions: sessionmaker[Session]
) -> None:
    _as_coordinator(client)
    path = f"/templates/{seeded['template']}"
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert "{{ first_name }}" in text and "{{ appointment_place }}" not in text
    assert "segment" in text and "Version 1" in text
    token = csrf_from(page)

    saved = client.post(
        path, data={"csrf_token": token, "body": "Hola {{ first_name }}, ¿qué tal?"}
    )
    assert saved.status_code == 302
    after = client.get(path).get_data(as_text=True)
    assert "Saved as version 2" in after and "Restore version 1" in after

    restored = client.post(f"{path}/restore/1", data={"csrf_token": token})
    assert restored.status_code == 302
    with sessions() as session:
        template = session.get(Template, seeded["template"])
        assert template is not None and template.version == 3
        assert template.body.startswith("Hola {{ first_name }}, soy {{ coach_first_name }}")


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("Hola {{ ''.__class__ }}", "Line 1, column 6: attribute and item access"),
        ("Hola {{ apellido }}", "unknown placeholder &#39;apellido&#39;"),
    ],
)
def test_an_unsafe_template_is_refused_with_its_position_and_nothing_is_stored(
    client: FlaskClient,
    seeded: dict[str, int],
    sessions: sessionmaker[Session],
    body: str,
    shown: str,
) -> None:
    _as_coordinator(client)
    path = f"/templates/{seeded['template']}"
    token = csrf_from(client.get(path))
    response = client.post(path, data={"csrf_token": token, "body": body})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Not saved." in page and shown in page
    with sessions() as session:
        template = session.get(Template, seeded["template"])
        assert template is not None and template.version == 1


def test_the_preview_endpoint_renders_counts_segments_and_warns(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    _as_coordinator(client)
    path = f"/templates/{seeded['template']}"
    token = csrf_from(client.get(path))
    ok = client.post(
        f"{path}/preview",
        json={"body": "Hola {{ first_name }}, ¿y la corte? Está bien."},
        headers={"X-CSRFToken": token},
    )
    assert ok.status_code == 200
    assert ok.json == {
        "ok": True,
        "text": "Hola Maria, ¿y la corte? Está bien.",
        "error": None,
        "encoding": "UCS-2",
        "characters": 35,
        "segments": 1,
        "non_gsm_chars": ["á"],
        "sensitive_terms": ["corte"],
        "place_note": None,  # a check-in has no place
    }
    bad = client.post(f"{path}/preview", json={"body": "{{ x.y }}"}, headers={"X-CSRFToken": token})
    assert bad.json["ok"] is False and bad.json["error"]["line"] == 1
    # Without the CSRF header the preview is refused like any other POST.
    assert client.post(f"{path}/preview", json={"body": "hi"}).status_code in (400, 403)


def test_the_preview_uses_this_programs_name_and_phone(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    _as_coordinator(client)
    path = f"/templates/{seeded['template']}"
    token = csrf_from(client.get(path))
    answer = client.post(
        f"{path}/preview",
        json={"body": "{{ program_name }}: {{ program_phone }}"},
        headers={"X-CSRFToken": token},
    )
    assert answer.json["text"] == "Homecoming Peers: +1 555 010 0100"


def test_saving_settings_says_how_many_future_contacts_changed(
    client: FlaskClient, seeded: dict[str, int], sessions: sessionmaker[Session], now: datetime
) -> None:
    from bot.web.context import utcnow

    with sessions() as session:
        person = session.get(Participant, seeded["participant"])
        assert person is not None
        at = utcnow() + timedelta(days=2)
        session.add(
            PlannedContact(
                participant_id=person.id,
                kind="checkin",
                rule="checkin",
                occurrence="day-9",
                version="1",
                template_key="checkin.1",
                send_after=at,
                not_after=at + timedelta(hours=8),
                state="planned",
                created_at=now,
            )
        )
        session.commit()
    _as_coordinator(client)
    page = client.get("/settings")
    text = page.get_data(as_text=True)
    assert 'value="1, 2, 3, 5, 7, 10, 14"' in text and 'value="10:00"' in text
    form = dict(re.findall(r'name="([a-z_0-9]+)" value="([^"]*)"', text))
    form.update(
        send_time="11:00",
        ladder_step_1="assigned_coach",
        ladder_step_2="covering_coach",
        ladder_step_3="coordinators",
    )
    response = client.post("/settings", data=form, follow_redirects=True)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    # Without the scheduler installed the contact is cancelled for the next pass to re-plan;
    # with it, the page counts what the re-plan changed.
    assert re.search(
        r"Saved\. (1 future planned contact was cancelled|\d+ future contacts? changed)", body
    )
    with sessions() as session:
        assert get_setting(session, "cadence")["send_time"] == "11:00"


def test_wrong_settings_are_shown_next_to_their_fields(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    _as_coordinator(client)
    text = client.get("/settings").get_data(as_text=True)
    form = dict(re.findall(r'name="([a-z_0-9]+)" value="([^"]*)"', text))
    form.update(send_time="23:00", ladder_step_1="assigned_coach")
    response = client.post("/settings", data=form)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "inside quiet hours" in page and 'aria-invalid="true"' in page


def test_reports_show_svg_charts_and_the_csv_downloads(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    _as_coordinator(client)
    page = client.get("/reports").get_data(as_text=True)
    assert page.count("<svg") == 3 and "<script" not in page.split("</main>")[0]
    assert "Median time to acknowledge" in page
    csv_response = client.get("/reports.csv?weeks=4")
    assert csv_response.status_code == 200
    assert csv_response.mimetype == "text/csv"
    assert "attachment" in csv_response.headers["Content-Disposition"]
    assert csv_response.get_data(as_text=True).startswith("section,label,measure,value\n")
    assert csv_response.get_data(as_text=True).count("\nweek,") == 12  # 4 weeks × 3 measures


def test_the_simulator_does_not_exist_outside_the_demo(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    _as_coordinator(client)
    assert client.get("/simulator").status_code == 404
