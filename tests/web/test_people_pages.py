"""Enrolment in the dashboard (issue 18.1), the participants list (18.4) and unknown numbers
(15.7), through the web app: coordinators and admins only, the importer's messages next to the
fields, re-planned at once, closing and reopening said on the page, all audited."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bot.config import Config
from bot.models import AuditLog, Flag, InboundMessage, OutboundMessage, Participant, User
from bot.services.inbound import receive
from bot.services.templates import seed_default_templates
from tests.factories import make_participant, make_sent_message, make_user
from tests.services.test_inbound import form
from tests.web.dashboard_helpers import csrf, login

STRANGER = "+13125550177"


@dataclass
class World:
    coach: User
    other_coach: User
    coordinator: User
    sam: Participant


@pytest.fixture(autouse=True)
def frozen(now: datetime) -> Iterator[None]:
    with time_machine.travel(now, tick=False):
        yield


@pytest.fixture
def world(sessions: sessionmaker[Session], now: datetime) -> World:
    with sessions() as session:
        seed_default_templates(session, now)
        coach = make_user(session, now, email="marcus@example.org", name="Marcus Lee")
        other = make_user(session, now, email="ana@example.org", name="Ana Ortiz")
        coordinator = make_user(session, now, email="cora@example.org", role="coordinator")
        sam = make_participant(
            session, now, first_name="Sam", last_name="Okafor", coach_id=coach.id
        )
        failed = make_sent_message(session, sam, now - timedelta(hours=3), status="undelivered")
        failed.error_code = 30003
        session.commit()
        for row in (coach, other, coordinator, sam):
            session.refresh(row)
            session.expunge(row)
        return World(coach, other, coordinator, sam)


def _as(client: FlaskClient, user: User) -> FlaskClient:
    assert login(client, user.email).status_code == 302
    return client


def _post(
    client: FlaskClient, path: str, data: Mapping[str, str | list[str]], **kwargs: Any
) -> TestResponse:
    return client.post(path, data={**data, "csrf_token": csrf(client, "/participants")}, **kwargs)


def _new_form(**overrides: str) -> dict[str, str]:
    values = {
        "first_name": "Dana",
        "last_name": "Reyes",
        "phone": "(312) 555-0143",
        "channel": "sms",
        "timezone": "America/Chicago",
        "language": "en",
        "release_date": "2026-03-01",
        "coach_id": "",
        "external_id": "",
    }
    values.update(overrides)
    return values


def _actions(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/participants/new"),
        ("post", "/participants/new"),
        ("post", "/participants/{sam}/edit"),
        ("post", "/participants/{sam}/close"),
        ("post", "/participants/{sam}/reopen"),
        ("post", "/participants/reassign"),
        ("get", "/unknown/1"),
        ("post", "/unknown/1/reply"),
        ("post", "/unknown/1/link"),
    ],
)
def test_coaches_are_refused_enrolment_and_unknown_numbers(
    client: FlaskClient, world: World, method: str, path: str
) -> None:
    _as(client, world.coach)
    path = path.format(sam=world.sam.id)
    if method == "get":
        assert client.get(path).status_code == 403
    else:
        assert _post(client, path, {}).status_code == 403


def test_a_coach_sees_no_edit_form_close_button_or_reassign_boxes(
    client: FlaskClient, world: World
) -> None:
    _as(client, world.coach)
    page = client.get(f"/participants/{world.sam.id}").get_data(as_text=True)
    assert 'id="edit-form"' not in page and 'id="close-form"' not in page
    assert "Sam Okafor" in page  # staff see the last name
    listing = client.get("/participants").get_data(as_text=True)
    assert 'name="ids"' not in listing and "Add a participant" not in listing


def test_a_coordinator_adds_a_participant_and_sees_the_welcome_planned(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    _as(client, world.coordinator)
    new = client.get("/participants/new").get_data(as_text=True)
    assert 'name="timezone"' in new and "Eastern (America/New_York)" in new
    response = _post(
        client, "/participants/new", _new_form(coach_id=str(world.coach.id)), follow_redirects=True
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Dana Reyes is enrolled" in page
    coming_up = page[page.index("Coming up") :]
    assert "welcome" in coming_up[:400]
    with sessions() as s:
        dana = s.scalars(select(Participant).where(Participant.first_name == "Dana")).one()
        assert (dana.last_name, dana.phone, dana.coach_id) == (
            "Reyes",
            "+13125550143",
            world.coach.id,
        )
    assert "participant.create" in _actions(sessions)


def test_a_bad_form_shows_the_importers_messages_next_to_the_fields_and_keeps_the_values(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    _as(client, world.coordinator)
    response = _post(
        client,
        "/participants/new",
        _new_form(first_name="", phone="555-01", release_date="", last_name="Keep Me"),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Mobile number: &#39;555-01&#39; is not a valid mobile number" in page
    assert "First name: is required" in page
    assert "Release date: is required" in page
    assert 'value="Keep Me"' in page
    assert re.search(r'id="phone"[^>]*aria-invalid="true"', page)
    with sessions() as s:
        assert s.scalars(select(Participant).where(Participant.first_name == "")).all() == []


def test_editing_the_release_date_re_plans_and_the_page_shows_the_new_plan(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    _as(client, world.coordinator)
    form = {
        "first_name": "Sam",
        "last_name": "Okafor",
        "phone": world.sam.phone,
        "channel": "sms",
        "timezone": "America/New_York",
        "language": "en",
        "release_date": "2026-03-20",
        "coach_id": str(world.coach.id),
        "external_id": world.sam.external_id,
    }
    response = _post(client, f"/participants/{world.sam.id}/edit", form, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Their texts are planned again" in page
    assert "Fri 20 Mar, 10:00 AM EDT · welcome" in page
    bad = _post(client, f"/participants/{world.sam.id}/edit", {**form, "timezone": "Mars/Base"})
    assert bad.status_code == 422
    assert "is not an IANA time zone" in bad.get_data(as_text=True)
    assert _actions(sessions).count("participant.edit") == 1


def test_reassigning_several_people_at_once(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions() as s:
        other = make_participant(s, now, first_name="Lee", coach_id=world.coach.id)
        s.commit()
        other_id = other.id
    _as(client, world.coordinator)
    response = _post(
        client,
        "/participants/reassign",
        {"ids": [str(world.sam.id), str(other_id)], "coach_id": str(world.other_coach.id)},
        follow_redirects=True,
    )
    assert "Reassigned 2 people." in response.get_data(as_text=True)
    with sessions() as s:
        coaches = set(s.scalars(select(Participant.coach_id)))
    assert coaches == {world.other_coach.id}
    assert _actions(sessions).count("participant.reassign") == 2


def test_closing_cancels_the_planned_texts_and_the_page_says_so_then_reopening(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    _as(client, world.coordinator)
    client.get(f"/participants/{world.sam.id}")
    refused = _post(client, f"/participants/{world.sam.id}/close", {"reason": " "})
    assert refused.status_code == 422
    assert "Reason: say why the enrolment is closed" in refused.get_data(as_text=True)
    from scheduler.plan import plan

    with sessions() as s:
        plan(s, datetime.now().astimezone())
        s.commit()
    response = _post(
        client,
        f"/participants/{world.sam.id}/close",
        {"reason": "finished the program"},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "planned texts cancelled" in page or "planned text cancelled" in page
    assert "Enrolment closed" in page and "finished the program" in page
    assert "Nothing planned while check-ins are off" in page
    reopened = _post(client, f"/participants/{world.sam.id}/reopen", {}, follow_redirects=True)
    text = reopened.get_data(as_text=True)
    assert "Reopened" in text and 'id="closed-banner"' not in text
    assert "Closed</strong> by" in text  # the history stays
    actions = _actions(sessions)
    assert actions.index("participant.close") < actions.index("participant.reopen")


def test_the_list_shows_tap_to_call_last_message_flags_and_error_words(
    client: FlaskClient, world: World
) -> None:
    _as(client, world.coach)
    listing = client.get("/participants?sort=recent").get_data(as_text=True)
    assert f'href="tel:{world.sam.phone}"' in listing
    assert "Sam Okafor" in listing and "Marcus Lee" in listing
    assert "Hi Sam, checking in." in listing
    page = client.get(f"/participants/{world.sam.id}").get_data(as_text=True)
    assert "phone unreachable: off or out of service (30003)" in page
    assert f'href="tel:{world.sam.phone}"' in page


def _unknown_text(sessions: sessionmaker[Session], config: Config, now: datetime) -> int:
    outcome = receive(sessions, form(STRANGER, "hi its Sam, new phone"), now=now, config=config)
    assert outcome.message_id is not None
    return outcome.message_id


def test_a_coordinator_replies_to_an_unknown_number_and_enrols_it(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    config: Config,
    now: datetime,
) -> None:
    message_id = _unknown_text(sessions, config, now)
    _as(client, world.coordinator)
    queue = client.get("/").get_data(as_text=True)
    assert f'href="/unknown/{message_id}"' in queue
    page = client.get(f"/unknown/{message_id}").get_data(as_text=True)
    assert "hi its Sam, new phone" in page and f'href="tel:{STRANGER}"' in page
    sent = _post(
        client,
        f"/unknown/{message_id}/reply",
        {"body": "Hi! Who is this?", "reply_key": "k"},
        follow_redirects=True,
    )
    assert "Reply queued (1 text). It goes out now." in sent.get_data(as_text=True)
    with sessions() as s:
        reply = s.scalars(
            select(OutboundMessage).where(OutboundMessage.created_by_id == world.coordinator.id)
        ).one()
        assert (reply.participant_id, reply.purpose, reply.to_address) == (
            None,
            "coach_reply",
            STRANGER,
        )
    prefilled = client.get(f"/participants/new?from_message={message_id}").get_data(as_text=True)
    assert f'value="{STRANGER}"' in prefilled
    created = _post(
        client,
        "/participants/new",
        {**_new_form(phone=STRANGER), "from_message": str(message_id)},
        follow_redirects=True,
    )
    text = created.get_data(as_text=True)
    assert "hi its Sam, new phone" in text and "Hi! Who is this?" in text
    with sessions() as s:
        flag = s.scalars(select(Flag).where(Flag.reason == "unknown_sender")).one()
        assert flag.state == "resolved"
        moved = s.get_one(InboundMessage, message_id)
        assert moved.participant_id is not None
    assert client.get(f"/unknown/{message_id}").status_code == 302


def test_linking_an_unknown_number_to_a_participant_whose_number_changed(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    config: Config,
    now: datetime,
) -> None:
    message_id = _unknown_text(sessions, config, now)
    _as(client, world.coordinator)
    missing = _post(client, f"/unknown/{message_id}/link", {"participant": "P-99999"})
    assert missing.status_code == 422
    assert "No participant with the ID &#39;P-99999&#39;." in missing.get_data(as_text=True)
    old_phone = world.sam.phone
    linked = _post(
        client,
        f"/unknown/{message_id}/link",
        {"participant": world.sam.external_id},
        follow_redirects=True,
    )
    page = linked.get_data(as_text=True)
    assert "Linked: this is Sam Okafor&#39;s number now" in page
    assert "Earlier numbers" in page and old_phone in page
    with sessions() as s:
        assert s.get_one(Participant, world.sam.id).phone == STRANGER
    assert "unknown.linked" in _actions(sessions)
