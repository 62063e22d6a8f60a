"""Coordinators map a message to an approved WhatsApp template on the Messages page, and the
program-level flag that says one is missing shows in the queue and on its own page."""

from __future__ import annotations

from datetime import datetime

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import AuditLog, WhatsAppTemplate
from bot.services.flags import raise_flag
from bot.services.templates import seed_default_templates
from tests.factories import make_user
from tests.web.dashboard_helpers import csrf_from, login

SID = "HX" + "0123456789abcdef" * 2


def _coordinator(client: FlaskClient, session: Session, now: datetime) -> None:
    seed_default_templates(session, now)
    make_user(session, now, email="cora@example.org", role="coordinator")
    session.commit()
    login(client, "cora@example.org")


def test_a_coordinator_maps_the_spanish_welcome_to_a_content_sid(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    _coordinator(client, session, now)
    token = csrf_from(client.get("/templates"))
    response = client.post(
        "/templates/whatsapp",
        data={
            "csrf_token": token,
            "template": "welcome:es",
            "content_sid": SID,
            "variables": "1=first_name, 2=program_name",
        },
    )
    assert response.status_code == 302
    page = client.get("/templates").get_data(as_text=True)
    assert SID in page and "1=first_name, 2=program_name" in page
    mapping = session.scalars(select(WhatsAppTemplate)).one()
    assert (mapping.template_key, mapping.language) == ("welcome", "es")
    assert session.scalars(select(AuditLog).where(AuditLog.action == "whatsapp_template.map")).one()


def test_a_placeholder_the_message_may_not_use_is_refused_next_to_the_form(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    _coordinator(client, session, now)
    token = csrf_from(client.get("/templates"))
    response = client.post(
        "/templates/whatsapp",
        data={
            "csrf_token": token,
            "template": "welcome:en",
            "content_sid": SID,
            "variables": "1=appointment_place",
        },
    )
    assert response.status_code == 422
    assert "is not a placeholder this message may use" in response.get_data(as_text=True)
    assert session.scalars(select(WhatsAppTemplate)).all() == []


def test_a_malformed_content_sid_is_refused(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    _coordinator(client, session, now)
    token = csrf_from(client.get("/templates"))
    response = client.post(
        "/templates/whatsapp",
        data={"csrf_token": token, "template": "welcome:en", "content_sid": "SM123"},
    )
    assert response.status_code == 422
    assert "HX followed by 32" in response.get_data(as_text=True)


def test_the_template_missing_flag_shows_in_the_queue_and_on_its_page(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    _coordinator(client, session, now)
    flag = raise_flag(session, reason="whatsapp_template_missing", now=now).flag
    session.commit()
    queue = client.get("/")
    assert queue.status_code == 200
    assert "WhatsApp messages need an approved template" in queue.get_data(as_text=True)
    page = client.get(f"/flags/{flag.id}")
    assert page.status_code == 200
    assert "/templates#whatsapp" in page.get_data(as_text=True)
