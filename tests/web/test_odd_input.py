"""Odd input is a 4xx, never a 500 (DESIGN.md §2; issue 17.8)."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Flag, InboundMessage, Participant, Template
from bot.services.templates import seed_default_templates
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import csrf_from, login
from tests.web.test_webhook import (  # the signed-webhook helpers
    app,  # noqa: F401  (the app with a Twilio auth token to sign with)
    inbound_form,
    message_of,
    post,
    signed_config,  # noqa: F401
)

TWENTY_DIGITS = "9" * 20


@pytest.fixture
def person(session: Session, now: datetime) -> Participant:
    participant = make_participant(session, now, phone="+12025550147")
    session.commit()
    return participant


@pytest.mark.parametrize("num_media", ["²", "١", "x", "-1", "1e3"])
def test_a_signed_crisis_text_with_a_non_decimal_num_media_is_stored_and_processed(
    client: FlaskClient, session: Session, person: Participant, num_media: str
) -> None:
    form = inbound_form(person.phone, "I want to kill myself", NumMedia=num_media)

    response = post(client, "/twilio/inbound", form)

    reply = message_of(response)
    assert reply is not None and "988" in reply
    session.expire_all()
    stored = session.scalars(select(InboundMessage)).one()
    assert (stored.num_media, stored.processing_state) == (0, "processed")
    assert session.scalars(select(Flag.reason)).all() == ["crisis"]
    session.rollback()


@pytest.mark.parametrize("path", ["/twilio/inbound", "/twilio/status"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_a_wrong_method_on_a_webhook_is_405_not_a_login_redirect(
    client: FlaskClient, path: str, method: str
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_a_wrong_method_on_a_webhook_is_405_for_a_signed_in_user_too(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="cora@example.org", role="coordinator")
    session.commit()
    login(client, "cora@example.org")
    assert client.get("/twilio/inbound").status_code == 405


@pytest.fixture
def signed_in(client: FlaskClient, session: Session, now: datetime) -> FlaskClient:
    seed_default_templates(session, now)
    make_user(session, now, email="cora@example.org", role="coordinator")
    session.commit()
    login(client, "cora@example.org")
    return client


@pytest.mark.parametrize(
    "path",
    [
        f"/participants/{TWENTY_DIGITS}",
        f"/flags/{TWENTY_DIGITS}",
        f"/templates/{TWENTY_DIGITS}",
        f"/users/{TWENTY_DIGITS}",
        f"/participants/{2**31}",
    ],
)
def test_an_out_of_range_id_in_a_url_is_404(signed_in: FlaskClient, path: str) -> None:
    assert signed_in.get(path).status_code == 404


@pytest.mark.parametrize(
    "query",
    [f"page={TWENTY_DIGITS}", "page=²", f"user={TWENTY_DIGITS}"],
)
def test_an_out_of_range_number_in_a_parameter_is_not_a_500(
    signed_in: FlaskClient, query: str
) -> None:
    for path in ("/participants", "/audit"):
        assert signed_in.get(f"{path}?{query}").status_code in (200, 400, 403, 404)


@pytest.mark.parametrize("value", ["Sam\x00", "\x00", "Sam\x01", "a\x7fb", "x\ty"])
def test_a_control_character_in_a_search_is_400(signed_in: FlaskClient, value: str) -> None:
    assert signed_in.get("/participants", query_string={"q": value}).status_code == 400


def test_a_nul_in_a_template_is_400_and_nothing_saved(
    signed_in: FlaskClient, session: Session
) -> None:
    template_id = session.scalars(
        select(Template.id).where(Template.key == "checkin.1", Template.language == "en")
    ).one()
    session.rollback()  # SQLite: the test's read transaction holds the write lock
    path = f"/templates/{template_id}"
    token = csrf_from(signed_in.get(path))

    response = signed_in.post(path, data={"csrf_token": token, "body": "Hi\x00 there"})

    assert response.status_code == 400
    session.expire_all()
    assert session.get(Template, template_id).version == 1  # type: ignore[union-attr]
    session.rollback()


def test_line_breaks_and_tabs_in_a_template_are_text(
    signed_in: FlaskClient, session: Session
) -> None:
    template_id = session.scalars(
        select(Template.id).where(Template.key == "checkin.1", Template.language == "en")
    ).one()
    session.rollback()  # SQLite: the test's read transaction holds the write lock
    path = f"/templates/{template_id}"
    token = csrf_from(signed_in.get(path))
    body = "Hi {{ first_name }},\r\n\thow are you?"
    assert signed_in.post(path, data={"csrf_token": token, "body": body}).status_code == 302


def test_a_nul_in_a_template_preview_is_not_a_500(signed_in: FlaskClient, session: Session) -> None:
    template_id = session.scalars(select(Template.id)).first()
    session.rollback()
    page = signed_in.get(f"/templates/{template_id}")
    response = signed_in.post(
        f"/templates/{template_id}/preview",
        json={"body": "Hi\x00"},
        headers={"X-CSRFToken": csrf_from(page)},
    )
    assert response.status_code < 500
