"""The phone simulator (demo only): a text typed as a participant reaches /twilio/inbound
signed exactly as Twilio signs it (PUBLIC_BASE_URL + path, the app's own auth token)."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask import Blueprint, Flask, request
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from bot.config import Config
from bot.transport.simulated import SimulatedTransport
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import csrf_from, login

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def demo_app(config: Config, transport: SimulatedTransport) -> Flask:
    from bot import create_app
    from bot.web.simulator import INBOUND_PATH

    demo = config.with_overrides(
        demo=True, twilio_auth_token=AUTH_TOKEN, twilio_from_number="+12025550100"
    )
    app = create_app(demo, transport)
    received: list[dict[str, str]] = []
    app.extensions["simulator_test_received"] = received
    if not any(rule.rule == INBOUND_PATH for rule in app.url_map.iter_rules()):
        # This build has no inbound webhook yet: stand in with one that checks the signature
        # the way Twilio's validator does and answers TwiML.
        stand_in = Blueprint("webhook", __name__)

        @stand_in.post(INBOUND_PATH)
        def inbound() -> tuple[str, int, dict[str, str]]:
            valid = RequestValidator(AUTH_TOKEN).validate(
                demo.public_base_url + INBOUND_PATH,
                request.form.to_dict(),
                request.headers.get("X-Twilio-Signature", ""),
            )
            if not valid:
                return "forbidden", 403, {}
            received.append(request.form.to_dict())
            return (
                "<Response><Message>Got it, thanks!</Message></Response>",
                200,
                {"Content-Type": "text/xml"},
            )

        app.register_blueprint(stand_in)
    return app


@pytest.fixture
def demo_client(demo_app: Flask) -> FlaskClient:
    return demo_app.test_client()


@pytest.fixture
def people(sessions: sessionmaker[Session], now: datetime) -> dict[str, int]:
    with sessions() as session:
        make_user(session, now, role="coordinator", email="cora@example.org")
        make_user(session, now, role="coach", email="marcus@example.org")
        luis = make_participant(
            session, now, first_name="Luis", phone="+13125550111", language="es"
        )
        session.commit()
        return {"luis": luis.id}


def test_coordinators_text_as_a_participant_through_the_signed_webhook(
    demo_app: Flask, demo_client: FlaskClient, people: dict[str, int]
) -> None:
    login(demo_client, "cora@example.org")
    page = demo_client.get(f"/simulator?participant={people['luis']}")
    assert page.status_code == 200
    assert "Luis (P-" in page.get_data(as_text=True)

    response = demo_client.post(
        "/simulator/send",
        data={
            "csrf_token": csrf_from(page),
            "participant_id": str(people["luis"]),
            "body": "hola, todo bien",
        },
        follow_redirects=True,
    )

    text = response.get_data(as_text=True)
    received = demo_app.extensions["simulator_test_received"]
    if received:  # the stand-in webhook checked the signature and saw the form
        assert received[0]["From"] == "+13125550111" and received[0]["Body"] == "hola, todo bien"
        assert received[0]["To"] == "+12025550100"
        assert "The bot answered at once: Got it, thanks!" in text
    else:  # the real webhook: the message is stored for the participant
        from bot.models import InboundMessage

        with demo_app.extensions["checkin"].sessions() as session:
            stored = session.query(InboundMessage).filter_by(participant_id=people["luis"]).one()
            assert stored.body == "hola, todo bien"
    assert "The webhook answered" not in text


def test_coaches_cannot_use_the_simulator(demo_client: FlaskClient, people: dict[str, int]) -> None:
    login(demo_client, "marcus@example.org")
    assert demo_client.get("/simulator").status_code == 403


def test_the_simulator_is_absent_with_a_real_transport(
    config: Config, people: dict[str, int]
) -> None:
    from bot import create_app

    class NotSimulated:
        def send(self, request: object) -> object:
            raise AssertionError("never called")

    app = create_app(config.with_overrides(demo=True), NotSimulated())  # type: ignore[arg-type]
    client = app.test_client()
    login(client, "cora@example.org")
    assert client.get("/simulator").status_code == 404
