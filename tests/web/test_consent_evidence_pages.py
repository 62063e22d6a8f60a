"""Consent evidence in the dashboard (issue 19.3): the setting on /settings, who is waiting
(/participants/consent-evidence, and a line on the queue), the consent fields of the
participant form, the consent history on a participant's page, and an import's consent."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bot.models import ConsentEvent, Participant, User
from bot.services import consent
from bot.services.settings import get_setting, set_setting
from bot.services.templates import seed_default_templates
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import csrf, csrf_from, login

WAITING = "/participants/consent-evidence"


@dataclass
class World:
    coordinator: User
    coach: User
    held: Participant  # consent asserted by an import, no source
    evidenced: Participant  # a signed enrolment form on file


@pytest.fixture(autouse=True)
def frozen(now: datetime) -> Iterator[None]:
    with time_machine.travel(now, tick=False):
        yield


@pytest.fixture
def world(sessions: sessionmaker[Session], now: datetime) -> World:
    with sessions() as session:
        seed_default_templates(session, now)
        coordinator = make_user(
            session, now, role="coordinator", email="cora@example.org", name="Cora Diaz"
        )
        coach = make_user(session, now, email="marcus@example.org", name="Marcus Lee")
        held = make_participant(session, now, first_name="Hana", coach_id=coach.id)
        evidenced = make_participant(session, now, first_name="Eli", coach_id=coach.id)
        consent.record_consent(
            session,
            [
                (held.id, consent.Evidence()),
                (evidenced.id, consent.Evidence("signed enrolment form", date(2026, 2, 20))),
            ],
            now=now,
            recorder=consent.Recorder(
                "import", user_id=coordinator.id, label="dashboard:cora", import_file="intake.csv"
            ),
        )
        session.commit()
        for row in (coordinator, coach, held, evidenced):
            session.refresh(row)
            session.expunge(row)
    return World(coordinator, coach, held, evidenced)


def _require(sessions: sessionmaker[Session], now: datetime, on: bool = True) -> None:
    with sessions.begin() as session:
        set_setting(session, "consent", {"require_consent_evidence": on}, now=now, user_id=None)


def _as(client: FlaskClient, user: User) -> FlaskClient:
    assert login(client, user.email).status_code == 302
    return client


def _settings_form(page: str) -> dict[str, str]:
    """What a browser posts: the text fields and selects as shown, no checkbox ticked."""
    form = dict(
        re.findall(r'<input type="(?:text|number)"[^>]* name="([a-z_0-9]+)" value="([^"]*)"', page)
    )
    form.update(re.findall(r'<input type="hidden" name="(csrf_token)" value="([^"]*)"', page))
    for name, body in re.findall(
        r'<select id="[^"]*" name="([a-z_0-9]+)"[^>]*>(.*?)</select>', page, re.S
    ):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        form[name] = chosen.group(1) if chosen else ""
    return form


# --- the setting ---------------------------------------------------------------------------


def test_the_setting_is_off_by_default_and_a_coordinator_turns_it_on(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    _as(client, world.coordinator)
    page = client.get("/settings").get_data(as_text=True)
    assert 'name="require_consent_evidence"' in page
    assert re.search(r'name="require_consent_evidence"(?![^>]*checked)', page)
    form = _settings_form(page)
    response = client.post(
        "/settings", data={**form, "require_consent_evidence": "yes"}, follow_redirects=True
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "1 person is waiting for consent evidence" in body
    with sessions() as session:
        assert get_setting(session, "consent")["require_consent_evidence"] is True
    page = client.get("/settings").get_data(as_text=True)
    assert re.search(r'name="require_consent_evidence" checked', page)
    assert f'href="{WAITING}"' in page

    # An unticked box turns it off again.
    client.post("/settings", data=_settings_form(page), follow_redirects=True)
    with sessions() as session:
        assert get_setting(session, "consent")["require_consent_evidence"] is False


# --- who is waiting ------------------------------------------------------------------------


def test_the_waiting_list_shows_who_is_held_and_links_to_where_it_is_recorded(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], now: datetime
) -> None:
    _require(sessions, now)
    _as(client, world.coordinator)
    response = client.get(WAITING)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert world.held.label in page and world.evidenced.label not in page
    assert "Asserted by import of intake.csv, Cora Diaz" in page
    assert f'href="/participants/{world.held.id}?record=consent#edit-consent"' in page

    queue = client.get("/").get_data(as_text=True)
    assert 'id="consent-evidence-waiting"' in queue and "1 person is waiting" in queue


def test_with_the_setting_off_nobody_is_listed_and_the_queue_says_nothing(
    client: FlaskClient, world: World
) -> None:
    _as(client, world.coordinator)
    page = client.get(WAITING).get_data(as_text=True)
    assert 'id="consent-not-required"' in page and world.held.label not in page
    assert 'id="consent-evidence-waiting"' not in client.get("/").get_data(as_text=True)


def test_coaches_cannot_open_the_waiting_list(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], now: datetime
) -> None:
    _require(sessions, now)
    _as(client, world.coach)
    assert client.get(WAITING).status_code == 403
    assert 'id="consent-evidence-waiting"' not in client.get("/").get_data(as_text=True)


def test_a_held_persons_page_says_why_and_recording_a_source_takes_them_off_the_list(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], now: datetime
) -> None:
    _require(sessions, now)
    _as(client, world.coordinator)
    page = client.get(f"/participants/{world.held.id}?record=consent").get_data(as_text=True)
    assert "the program requires a recorded consent source" in page
    assert 'id="consent-warning"' in page  # a reply would wait too
    assert re.search(r"<details open>\s*<summary>Edit Hana", page)
    assert "No consent source is on file" in page

    form = _new_form(
        first_name="Hana",
        phone=world.held.phone,
        timezone="America/New_York",
        coach_id=str(world.coach.id),
        external_id=world.held.external_id,
        consent_source="signed enrolment form",
        consent_date="2026-02-27",
    )
    response = client.post(
        f"/participants/{world.held.id}/edit",
        data={**form, "csrf_token": csrf_from(client.get(f"/participants/{world.held.id}"))},
        follow_redirects=True,
    )
    body = response.get_data(as_text=True)
    assert "How they consented is recorded" in body
    assert "On file: signed enrolment form (2026-02-27)" in body
    assert 'id="automation-hold"' not in body
    assert world.held.label not in client.get(WAITING).get_data(as_text=True)


# --- the form ------------------------------------------------------------------------------


def _new_form(**overrides: str) -> dict[str, str]:
    values = {
        "first_name": "Dana",
        "last_name": "",
        "phone": "(312) 555-0143",
        "channel": "sms",
        "timezone": "America/Chicago",
        "language": "en",
        "release_date": "2026-03-01",
        "coach_id": "",
        "external_id": "",
        "consent_source": "",
        "consent_date": "",
    }
    values.update(overrides)
    return values


def test_the_new_participant_form_takes_how_and_when_they_consented(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], now: datetime
) -> None:
    _as(client, world.coordinator)
    new = client.get("/participants/new").get_data(as_text=True)
    assert 'name="consent_source"' in new and 'name="consent_date"' in new
    response = client.post(
        "/participants/new",
        data={
            **_new_form(consent_source="signed enrolment form", consent_date="2026-02-25"),
            "csrf_token": csrf(client, "/participants/new"),
        },
    )
    assert response.status_code == 302
    with sessions() as session:
        dana = session.scalars(select(Participant).where(Participant.first_name == "Dana")).one()
        event = session.scalars(
            select(ConsentEvent).where(ConsentEvent.participant_id == dana.id)
        ).one()
    assert (event.source, event.consent_date, event.recorded_by_id) == (
        "signed enrolment form",
        date(2026, 2, 25),
        world.coordinator.id,
    )


def test_a_bad_consent_date_is_shown_next_to_its_field_and_nothing_is_saved(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    _as(client, world.coordinator)
    response = client.post(
        "/participants/new",
        data={
            **_new_form(consent_source="signed form", consent_date="27/02/2026"),
            "csrf_token": csrf(client, "/participants/new"),
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Consent date: &#39;27/02/2026&#39; is not a date like 2026-03-14" in page
    with sessions() as session:
        assert (
            session.scalars(select(Participant).where(Participant.first_name == "Dana")).first()
            is None
        )


# --- the history ---------------------------------------------------------------------------


def test_the_consent_history_shows_source_date_wording_and_who_recorded_it(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        consent.opt_out(
            session,
            session.get_one(Participant, world.evidenced.id),
            now=now,
            method="keyword",
            wording="STOP please",
        )
    _as(client, world.coordinator)
    page = client.get(f"/participants/{world.evidenced.id}").get_data(as_text=True)
    history = page.split('id="consent-history"')[1].split("</ul>")[0]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", history))
    assert "Consented (import of intake.csv)" in text
    assert "Source signed enrolment form" in text and "Consent date 2026-02-20" in text
    assert "Recorded by Cora Diaz" in text
    assert "Opted out (keyword)" in text and "Wording “STOP please”" in text

    held = client.get(f"/participants/{world.held.id}").get_data(as_text=True)
    held_history = re.sub(
        r"\s+",
        " ",
        re.sub(r"<[^>]+>", " ", held.split('id="consent-history"')[1].split("</ul>")[0]),
    )
    assert "Consent asserted, no evidence (import of intake.csv)" in held_history
    assert "Source none recorded" in held_history


# --- an import in the dashboard ------------------------------------------------------------


def _upload(client: FlaskClient, text: str, name: str) -> TestResponse:
    return client.post(
        "/imports",
        data={
            "kind": "participants",
            "file": (io.BytesIO(text.encode()), name),
            "csrf_token": csrf(client, "/imports"),
        },
        content_type="multipart/form-data",
    )


def test_a_dashboard_import_records_the_file_and_who_ran_it_and_lists_the_columns(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], now: datetime
) -> None:
    _as(client, world.coordinator)
    page = client.get("/imports").get_data(as_text=True)
    assert "<code>consent_source</code>" in page and "<code>consent_date</code>" in page
    preview = _upload(
        client,
        "external_id,first_name,phone,release_date,consent_source,consent_date\n"
        "N-1,Noor,202-555-0161,2026-03-01,,\n"
        "N-2,Omar,202-555-0162,2026-03-01,verbal consent at intake,2026-02-28\n",
        "april.csv",
    )
    assert preview.status_code == 302
    shown = client.get(preview.headers["Location"])
    sha = re.search(r'name="sha256" value="([0-9a-f]{64})"', shown.get_data(as_text=True))
    assert sha
    done = client.post(
        preview.headers["Location"],
        data={"csrf_token": csrf_from(shown), "sha256": sha.group(1)},
    )
    assert done.status_code == 302
    with sessions() as session:
        rows = session.execute(
            select(Participant.external_id, ConsentEvent)
            .join(ConsentEvent, ConsentEvent.participant_id == Participant.id)
            .where(Participant.external_id.in_(("N-1", "N-2")))
            .order_by(Participant.external_id)
        ).all()
    (_, asserted), (_, evidence) = rows
    assert (asserted.source, asserted.import_file, asserted.recorded_by_id, asserted.at) == (
        None,
        "april.csv",
        world.coordinator.id,
        now,
    )
    assert (evidence.source, evidence.consent_date) == (
        "verbal consent at intake",
        date(2026, 2, 28),
    )


def test_a_dashboard_import_with_a_bad_consent_date_names_the_line_and_writes_nothing(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    _as(client, world.coordinator)
    response = _upload(
        client,
        "external_id,first_name,phone,release_date,consent_source,consent_date\n"
        "N-1,Noor,202-555-0161,2026-03-01,signed form,2026-02-28\n"
        "N-2,Omar,202-555-0162,2026-03-01,signed form,28 Feb 2026\n",
        "bad.csv",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "line 3: consent_date: &#39;28 Feb 2026&#39; is not a date like 2026-03-14" in page
    with sessions() as session:
        assert (
            session.scalars(select(Participant).where(Participant.external_id == "N-1")).first()
            is None
        )
