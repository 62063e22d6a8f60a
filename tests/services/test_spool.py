"""The spool (issue 17.2): texts kept on disk while the database does not answer, answered
without it, and replayed in order, exactly once, processed as usual."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import WEB_TIMEOUTS, make_engine, make_session_factory
from bot.models import Flag, InboundMessage, OutboundMessage, Participant
from bot.services import spool
from tests.factories import make_participant, make_user

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # a closed port


def _form(sender: str, body: str, sid: str) -> dict[str, list[str]]:
    return {
        "MessageSid": [sid],
        "AccountSid": ["AC" + "0" * 32],
        "From": [sender],
        "To": ["+15550100999"],
        "Body": [body],
        "NumMedia": ["0"],
    }


def _spool(
    config: Config, sender: str, body: str, sid: str, at: datetime, *, offline: bool = True
) -> Path:
    reply = spool.offline_reply(body, config) if offline else None
    return spool.spool_text(
        config.spool_dir,
        spool.SpooledText(
            form=_form(sender, body, sid),
            received_at=at,
            signature="sig",
            url="https://checkin.example.org/twilio/inbound",
            reply=reply.body if reply else None,
            reply_purpose=reply.purpose if reply else None,
        ),
    )


def _sid(n: int) -> str:
    return f"SM{n:032d}"


def test_a_spooled_text_is_one_private_json_file_with_nothing_half_written(
    config: Config, now: datetime
) -> None:
    path = _spool(config, "+13125550001", "I want to kill myself", _sid(1), now)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in config.spool_dir.iterdir()] == [path.name]  # no temp file left
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["form"]["Body"] == ["I want to kill myself"]
    assert data["signature"] == "sig" and data["url"].endswith("/twilio/inbound")
    assert "988" in data["reply"] and "911" in data["reply"]
    assert data["reply_purpose"] == "crisis_reply"
    assert spool.read(path).received_at == now


def test_names_sort_in_arrival_order(config: Config, now: datetime) -> None:
    paths = [_spool(config, "+13125550001", f"text {n}", _sid(n), now) for n in range(5)]
    assert spool.waiting(config.spool_dir) == paths


def test_without_the_database_crisis_and_help_are_answered_and_nothing_else(
    config: Config,
) -> None:
    crisis = spool.offline_reply("i want to end my life", config)
    assert crisis is not None and "988" in crisis.body and "911" in crisis.body
    assert "Homecoming Peers" in crisis.body
    spanish = spool.offline_reply("ya no quiero vivir", config)
    assert spanish is not None and "AYUDA" in spanish.body and "911" in spanish.body
    help_reply = spool.offline_reply("HELP", config)
    assert help_reply is not None and "+1 555 010 0100" in help_reply.body
    assert "988" in help_reply.body and help_reply.purpose == "reply"
    ayuda = spool.offline_reply("ayuda", config)
    assert ayuda is not None and "llama" in ayuda.body
    assert spool.offline_reply("see you tuesday", config) is None
    assert spool.offline_reply("STOP", config) is None


def test_replay_stores_and_processes_in_arrival_order_then_empties_the_spool(
    config: Config, sessions: sessionmaker[Session], now: datetime
) -> None:
    """STOP then START, spooled: replayed in that order, the person ends opted in."""
    with sessions.begin() as session:
        person = make_participant(session, now)
        phone, person_id = person.phone, person.id
    _spool(config, phone, "STOP", _sid(1), now)
    _spool(config, phone, "START", _sid(2), now + timedelta(seconds=5))
    later = now + timedelta(minutes=20)
    counts = spool.replay(sessions, config.spool_dir, now=later, config=config)
    assert (counts.replayed, counts.duplicates, counts.left) == (2, 0, 0)
    assert spool.waiting(config.spool_dir) == []
    with sessions() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert [(r.body, r.received_at, r.processing_state) for r in rows] == [
            ("STOP", now, "processed"),
            ("START", now + timedelta(seconds=5), "processed"),
        ]
        participant = session.get(Participant, person_id)
        assert participant is not None and participant.status == "active"


def test_a_crisis_text_is_flagged_and_paged_and_its_twiml_reply_recorded_once(
    config: Config, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        coach = make_user(session, now)
        person = make_participant(session, now, coach_id=coach.id)
        phone, person_id = person.phone, person.id
    _spool(config, phone, "I want to kill myself", _sid(7), now)
    spool.replay(sessions, config.spool_dir, now=now + timedelta(minutes=3), config=config)
    with sessions() as session:
        flag = session.scalars(select(Flag).where(Flag.reason == "crisis")).one()
        assert flag.participant_id == person_id and flag.severity == "urgent"
        replies = session.scalars(
            select(OutboundMessage).where(OutboundMessage.participant_id == person_id)
        ).all()
        assert [(r.idempotency_key, r.status, r.purpose) for r in replies] == [
            (f"reply:{_sid(7)}", "sent", "crisis_reply")
        ]
        assert "988" in replies[0].body and replies[0].sent_at == now
        pages = session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "page")
        ).all()
        assert [p.user_id for p in pages] == [coach.id]


def test_a_text_spooled_twice_or_already_stored_is_stored_once(
    config: Config, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        phone = make_participant(session, now).phone
    _spool(config, phone, "hello", _sid(3), now)
    _spool(config, phone, "hello", _sid(3), now + timedelta(seconds=1))  # Twilio's retry
    first = spool.replay(sessions, config.spool_dir, now=now, config=config)
    _spool(config, phone, "hello", _sid(3), now + timedelta(seconds=2))
    second = spool.replay(sessions, config.spool_dir, now=now, config=config)
    assert (first.replayed, first.duplicates, second.duplicates) == (1, 1, 1)
    with sessions() as session:
        assert len(session.scalars(select(InboundMessage)).all()) == 1
    assert spool.waiting(config.spool_dir) == []


def test_a_queued_late_reply_is_withdrawn_when_the_spool_shows_it_went_in_twiml(
    config: Config, sessions: sessionmaker[Session], now: datetime
) -> None:
    """The text was stored, its processing failed, a tick queued the late crisis reply; the
    spooled copy says the webhook answered it already: the queued one never goes."""
    from bot.services.inbound import process
    from bot.services.inbound_form import parse_form
    from bot.services.inbound_store import Incoming, store

    with sessions.begin() as session:
        person = make_participant(session, now)
        phone = person.phone
    path = _spool(config, phone, "I want to kill myself", _sid(9), now)
    form = parse_form(spool.read(path).form)
    with sessions.begin() as session:
        stored = store(session, form, now=now)
        assert stored is not None
        process(session, Incoming.stored(stored, form, now), now=now, config=config, in_twiml=False)
    spool.replay(sessions, config.spool_dir, now=now, config=config)
    with sessions() as session:
        reply = session.scalars(
            select(OutboundMessage).where(OutboundMessage.idempotency_key == f"reply:{_sid(9)}")
        ).one()
        assert reply.status == "cancelled"


def test_a_database_that_does_not_answer_leaves_every_file_for_the_next_replay(
    config: Config, now: datetime
) -> None:
    engine = make_engine(UNREACHABLE, timeouts=WEB_TIMEOUTS)
    try:
        paths = [_spool(config, "+13125550001", f"t{n}", _sid(n), now) for n in range(3)]
        counts = spool.replay(
            make_session_factory(engine), config.spool_dir, now=now, config=config
        )
    finally:
        engine.dispose()
    assert counts.left == 3 and counts.errors == ["OperationalError"]
    assert spool.waiting(config.spool_dir) == paths


def test_an_unreadable_file_is_moved_aside_and_the_rest_replayed(
    config: Config, sessions: sessionmaker[Session], now: datetime
) -> None:
    _spool(config, "+13125550001", "first", _sid(1), now)
    bad = config.spool_dir / "00000000000000000001-1-000000.json"
    bad.write_text("{not json")
    counts = spool.replay(sessions, config.spool_dir, now=now, config=config)
    assert (counts.replayed, counts.rejected) == (1, 1)
    assert (config.spool_dir / "rejected" / bad.name).exists()
    assert spool.waiting(config.spool_dir) == []


@pytest.mark.parametrize("body", ["", "x" * 2000])
def test_any_body_round_trips(config: Config, now: datetime, body: str) -> None:
    path = _spool(config, "whatsapp:+13125550001", body, _sid(4), now)
    assert spool.read(path).form["Body"] == [body]
