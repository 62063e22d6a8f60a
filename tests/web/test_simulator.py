"""The phone simulator (demo only): a text typed as a participant goes through the real inbound
path (POST /twilio/inbound signed over PUBLIC_BASE_URL + path with the app's auth token), and
"Run the scheduler now" runs the real tick with the app's simulated transport."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bot.config import Config
from bot.models import Flag, InboundMessage, OutboundMessage, Participant, PlannedContact
from bot.transport.simulated import SimulatedTransport
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import csrf_from, login

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def frozen(now: datetime) -> Iterator[None]:
    # 15:00 UTC is 10:00 in New York: outside quiet hours, and the welcome's slot.
    with time_machine.travel(now, tick=False):
        yield


@pytest.fixture
def demo_app(config: Config, transport: SimulatedTransport) -> Flask:
    from bot import create_app

    demo = config.with_overrides(
        demo=True, twilio_auth_token=AUTH_TOKEN, twilio_from_number="+12025550100"
    )
    return create_app(demo, transport)


@pytest.fixture
def demo_client(demo_app: Flask) -> FlaskClient:
    return demo_app.test_client()


@pytest.fixture
def people(sessions: sessionmaker[Session], now: datetime) -> dict[str, int]:
    with sessions() as session:
        make_user(session, now, role="coordinator", email="cora@example.org")
        coach = make_user(
            session, now, role="coach", email="marcus@example.org", phone="+13125550999"
        )
        luis = make_participant(
            session, now, first_name="Luis", phone="+13125550111", language="es", coach_id=coach.id
        )
        sam = make_participant(
            session, now, first_name="Sam", phone="+13125550112", coach_id=coach.id
        )
        session.commit()
        return {"luis": luis.id, "sam": sam.id}


def _text_as(client: FlaskClient, participant_id: int, body: str) -> str:
    page = client.get(f"/simulator?participant={participant_id}")
    assert page.status_code == 200
    response: TestResponse = client.post(
        "/simulator/send",
        data={"csrf_token": csrf_from(page), "participant_id": str(participant_id), "body": body},
        follow_redirects=True,
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "The webhook answered" not in text  # 403 (bad signature) or 400 would say so
    return text


def test_a_text_from_the_simulator_is_stored_by_the_real_webhook(
    demo_client: FlaskClient, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    login(demo_client, "cora@example.org")
    page = demo_client.get(f"/simulator?participant={people['luis']}")
    assert "Luis (P-" in page.get_data(as_text=True)

    _text_as(demo_client, people["luis"], "hola, todo bien")

    with sessions() as session:
        stored = session.scalars(
            select(InboundMessage).where(InboundMessage.participant_id == people["luis"])
        ).one()
        assert stored.body == "hola, todo bien"
        assert stored.from_address == "+13125550111" and stored.to_address == "+12025550100"
        assert stored.message_sid.startswith("SM") and stored.processing_state == "processed"
    # The conversation on the simulator page shows it.
    thread = demo_client.get(f"/simulator?participant={people['luis']}").get_data(as_text=True)
    assert "hola, todo bien" in thread


def test_a_crisis_text_from_the_simulator_gets_the_crisis_reply_and_an_urgent_flag(
    demo_client: FlaskClient, sessions: sessionmaker[Session], people: dict[str, int]
) -> None:
    login(demo_client, "cora@example.org")

    text = _text_as(demo_client, people["sam"], "I want to kill myself")

    assert "The bot answered at once:" in text and "988" in text
    with sessions() as session:
        flag = session.scalars(select(Flag).where(Flag.participant_id == people["sam"])).one()
        assert (flag.reason, flag.severity, flag.state) == ("crisis", "urgent", "open")
        reply = session.scalars(
            select(OutboundMessage).where(
                OutboundMessage.participant_id == people["sam"],
                OutboundMessage.purpose == "crisis_reply",
            )
        ).one()
        assert "988" in reply.body
        # The coach is paged through the outbox (the page goes out on the next tick).
        assert session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "page")
        ).all()


def test_stop_from_the_simulator_opts_the_participant_out(
    demo_client: FlaskClient,
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    people: dict[str, int],
) -> None:
    login(demo_client, "cora@example.org")

    text = _text_as(demo_client, people["sam"], "STOP")

    assert "Twilio answers this keyword itself" in text
    with sessions() as session:
        sam = session.get(Participant, people["sam"])
        assert sam is not None and sam.status == "opted_out" and sam.opted_out_at is not None
        flag = session.scalars(select(Flag).where(Flag.participant_id == people["sam"])).one()
        assert (flag.reason, flag.severity) == ("opted_out", "info")

    # And the scheduler sends them nothing afterwards, while Luis gets his welcome.
    page = demo_client.get(f"/simulator?participant={people['sam']}")
    demo_client.post(
        "/simulator/tick",
        data={"csrf_token": csrf_from(page), "participant_id": str(people["sam"])},
    )
    assert transport.messages_to("+13125550112") == []
    assert transport.messages_to("+13125550111")  # the pass did run and send


def test_run_the_scheduler_now_runs_the_real_tick_with_the_simulated_transport(
    demo_client: FlaskClient,
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    people: dict[str, int],
) -> None:
    login(demo_client, "cora@example.org")
    page = demo_client.get(f"/simulator?participant={people['luis']}")

    response = demo_client.post(
        "/simulator/tick",
        data={"csrf_token": csrf_from(page), "participant_id": str(people["luis"])},
        follow_redirects=True,
    )

    text = response.get_data(as_text=True)
    # Luis and Sam: a welcome and the day-1 check-in each.
    assert "Scheduler pass done: 4 text(s) sent" in text
    # Released yesterday, enrolled now at 10:00 local: the welcome and the day-1 check-in.
    sent = transport.messages_to("+13125550111")
    assert [m.idempotency_key.split(":")[0] for m in sent] == ["contact", "contact"]
    assert all(m.body.startswith("Hola Luis") for m in sent)
    with sessions() as session:
        contact = session.scalars(
            select(PlannedContact).where(
                PlannedContact.participant_id == people["luis"], PlannedContact.kind == "welcome"
            )
        ).one()
        assert contact.state == "sent"
    # The simulator's thread shows what the schedule sent.
    assert "Hola Luis" in text
    # A second pass sends nothing again (exactly once).
    demo_client.post(
        "/simulator/tick",
        data={"csrf_token": csrf_from(page), "participant_id": str(people["luis"])},
    )
    assert transport.messages_to("+13125550111") == sent


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
