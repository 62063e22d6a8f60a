"""The editor refuses an unsafe crisis reply and says what is missing, next to the field."""

from __future__ import annotations

from datetime import datetime

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Template
from bot.services.templates import seed_default_templates
from tests.factories import make_user
from tests.web.dashboard_helpers import csrf_from, login


def test_saving_a_crisis_reply_without_988_and_911_is_refused_with_what_is_missing(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    seed_default_templates(session, now)
    make_user(session, now, email="cora@example.org", role="coordinator")
    crisis = session.scalars(
        select(Template).where(Template.key == "crisis", Template.language == "es")
    ).one()
    session.commit()
    login(client, "cora@example.org")
    path = f"/templates/{crisis.id}"
    token = csrf_from(client.get(path))

    response = client.post(
        path, data={"csrf_token": token, "body": "Gracias {{ first_name }}, hablamos pronto."}
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Not saved." in page and "Missing: 988, AYUDA (to text to 988), 911" in page
    session.expire_all()
    assert session.get(Template, crisis.id).version == 1  # type: ignore[union-attr]
