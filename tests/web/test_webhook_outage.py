"""The webhook and the dashboard while the database does not answer (issue 17.2, 17.3): signed
texts are spooled and still answered (988/911, HELP), forged ones refused; the next request
replays the spool in order before its own text; the dashboard answers 503, never 500."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import WEB_TIMEOUTS, make_engine, make_session_factory
from bot.models import Flag, InboundMessage, OutboundMessage, Participant
from bot.services import spool
from bot.transport.simulated import SimulatedTransport
from bot.web.context import AppState
from scheduler.tick import tick
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import login
from tests.web.test_webhook import TOKEN, inbound_form, message_of, post

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # a closed port


@pytest.fixture
def signed_config(config: Config) -> Config:
    return config.with_overrides(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TOKEN,
        twilio_from_number="+15550100999",
    )


@pytest.fixture
def app(signed_config: Config, transport: SimulatedTransport) -> Flask:
    from bot import create_app

    return create_app(signed_config, transport)


@contextmanager
def database_down(app: Flask) -> Iterator[None]:
    """The app's sessions point at a closed port while inside."""
    state: AppState = app.extensions["checkin"]
    real = state.sessions
    engine = make_engine(UNREACHABLE, timeouts=WEB_TIMEOUTS)
    state.sessions = make_session_factory(engine)
    try:
        yield
    finally:
        state.sessions = real
        engine.dispose()


@pytest.fixture
def person(sessions: sessionmaker[Session], now: datetime) -> tuple[int, str]:
    with sessions.begin() as session:
        coach = make_user(session, now, name="Dana Coach", phone="+12025550111")
        participant = make_participant(session, now, coach_id=coach.id)
        return participant.id, participant.phone


def test_while_the_database_is_down_signed_texts_are_spooled_and_answered(
    app: Flask, client: FlaskClient, signed_config: Config, person: tuple[int, str]
) -> None:
    _, phone = person
    with database_down(app):
        crisis = message_of(post(client, "/twilio/inbound", inbound_form(phone, "I want to die")))
        help_reply = message_of(post(client, "/twilio/inbound", inbound_form(phone, "HELP")))
        other = message_of(post(client, "/twilio/inbound", inbound_form(phone, "see you")))
        forged = post(client, "/twilio/inbound", inbound_form(phone, "hi"), signature="bad")
    assert crisis is not None and "988" in crisis and "911" in crisis
    assert help_reply is not None and "988" in help_reply
    assert other is None
    assert forged.status_code == 403
    spooled = [spool.read(p) for p in spool.waiting(signed_config.spool_dir)]
    assert [s.form["Body"] for s in spooled] == [["I want to die"], ["HELP"], ["see you"]]
    assert [s.reply is not None for s in spooled] == [True, True, False]


def test_once_it_is_back_the_next_text_replays_the_spool_first_in_order(
    app: Flask,
    client: FlaskClient,
    signed_config: Config,
    sessions: sessionmaker[Session],
    person: tuple[int, str],
) -> None:
    person_id, phone = person
    with database_down(app):
        for body in ("STOP", "I want to kill myself", "START"):
            post(client, "/twilio/inbound", inbound_form(phone, body))
    assert message_of(post(client, "/twilio/inbound", inbound_form(phone, "thanks"))) is None
    assert spool.waiting(signed_config.spool_dir) == []
    with sessions() as session:
        bodies = session.scalars(select(InboundMessage.body).order_by(InboundMessage.id)).all()
        assert bodies == ["STOP", "I want to kill myself", "START", "thanks"]
        participant = session.get(Participant, person_id)
        assert participant is not None and participant.status == "active"
        assert session.scalars(select(Flag.reason).order_by(Flag.id)).all() == [
            "opted_out",
            "crisis",
        ]
        crisis_replies = session.scalars(
            select(OutboundMessage.status).where(OutboundMessage.purpose == "crisis_reply")
        ).all()
        assert crisis_replies == ["sent"]  # the TwiML one, recorded; never a second


def test_the_worker_replays_the_spool_and_pages_for_a_crisis(
    app: Flask,
    client: FlaskClient,
    signed_config: Config,
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    person: tuple[int, str],
    now: datetime,
) -> None:
    _, phone = person
    with database_down(app):
        post(client, "/twilio/inbound", inbound_form(phone, "I took too many pills"))
    summary = tick(sessions, transport, signed_config, now, rate_limited=False)
    assert summary.spool_replayed == 1
    assert spool.waiting(signed_config.spool_dir) == []
    with sessions() as session:
        assert session.scalars(select(Flag.reason)).all() == ["crisis"]
        pages = session.scalars(
            select(OutboundMessage.to_address).where(OutboundMessage.purpose == "page")
        ).all()
        assert pages == ["+12025550111"]


def test_the_dashboard_answers_a_clear_503_while_the_database_is_down(
    app: Flask, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        make_user(session, now, email="coord@example.org", role="coordinator")
    client = app.test_client()
    login(client, "coord@example.org")
    with database_down(app):
        for path in ("/", "/participants", "/flags/1"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert "temporarily unavailable" in response.get_data(as_text=True)
            assert response.headers["Retry-After"]
    assert client.get("/participants").status_code == 200


@pytest.mark.postgres_only
def test_a_held_lock_on_the_inbound_table_spools_instead_of_hanging(
    app: Flask,
    client: FlaskClient,
    signed_config: Config,
    engine: Engine,
    sessions: sessionmaker[Session],
    person: tuple[int, str],
) -> None:
    """The answer comes back while the lock is still held: the web sessions' lock timeout
    (3 s) ends the wait, and the text is spooled; once the lock is gone it is replayed."""
    _, phone = person
    state: AppState = app.extensions["checkin"]
    with state.engine.connect() as conn:
        assert conn.scalar(text("SHOW lock_timeout")) == "3s"
        assert conn.scalar(text("SHOW statement_timeout")) == "5s"
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE"))
    try:
        reply = message_of(post(client, "/twilio/inbound", inbound_form(phone, "kill myself")))
        assert reply is not None and "988" in reply
        assert len(spool.waiting(signed_config.spool_dir)) == 1
    finally:
        transaction.rollback()
        holder.close()
    post(client, "/twilio/inbound", inbound_form(phone, "ok"))
    with sessions() as session:
        assert session.scalars(select(InboundMessage.body).order_by(InboundMessage.id)).all() == [
            "kill myself",
            "ok",
        ]
