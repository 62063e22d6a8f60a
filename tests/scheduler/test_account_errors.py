"""Account errors stop, not fail (issue 17.4): a wrong auth token (401 / 20003) leaves every
due message pending with its attempts intact, raises one program-level `twilio_account` flag,
pages the admins once, and sending resumes (the flag resolved) when Twilio accepts again. The
real Twilio SDK talks to the fake at its HTTP layer."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Flag, OutboundMessage
from bot.services.outbox import enqueue
from bot.transport.twilio import TwilioTransport
from scheduler.tick import tick
from tests.factories import make_participant, make_user
from tests.scheduler.fake_twilio import FakeTwilio

COUNT = 20


def _twilio(config: Config, fake: FakeTwilio) -> tuple[Config, TwilioTransport]:
    config = config.with_overrides(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="rotated-token",
        twilio_from_number="+15550100000",
        twilio_api_base=fake.url,
    )
    return config, TwilioTransport.from_config(config)


def _due(sessions: sessionmaker[Session], now: datetime) -> int:
    with sessions.begin() as session:
        coach = make_user(session, now, phone="+12025550111")
        admin = make_user(session, now, role="admin", phone="+12025550199")
        make_user(session, now, role="coordinator", phone="+12025550122")
        for n in range(COUNT):
            person = make_participant(session, now, coach_id=coach.id)
            enqueue(
                session,
                idempotency_key=f"note:{n}",
                purpose="coach_reply",
                channel="sms",
                to_address=person.phone,
                body="Hi, it's your coach.",
                now=now,
                participant_id=person.id,
            )
        return admin.id


def test_a_wrong_token_leaves_messages_pending_flags_once_and_sending_resumes(
    config: Config, sessions: sessionmaker[Session], now: datetime
) -> None:
    admin_id = _due(sessions, now)
    with FakeTwilio() as fake:
        config, transport = _twilio(config, fake)
        fake.failure = (401, 20003)
        for minutes in (0, 1, 2):
            tick(sessions, transport, config, now + timedelta(minutes=minutes), rate_limited=False)
        assert fake.refused == 3  # one request per pass: each pass stops at the first refusal
        with sessions() as session:
            rows = session.scalars(
                select(OutboundMessage).where(OutboundMessage.purpose == "coach_reply")
            ).all()
            assert Counter(r.status for r in rows) == {"pending": COUNT}
            assert {r.attempts for r in rows} == {0}
            flag = session.scalars(select(Flag)).one()
            assert (flag.reason, flag.severity, flag.participant_id) == (
                "twilio_account",
                "high",
                None,
            )
            assert flag.occurrences == 3
            pages = session.scalars(
                select(OutboundMessage).where(OutboundMessage.purpose == "page")
            ).all()
            assert [p.user_id for p in pages] == [admin_id]  # the admins, once; no ladder

        fake.failure = None  # the token is fixed
        tick(sessions, transport, config, now + timedelta(minutes=3), rate_limited=False)
        sent_to = Counter((f["To"], f["Body"]) for f in fake.received)
        with sessions() as session:
            rows = session.scalars(
                select(OutboundMessage).where(OutboundMessage.purpose == "coach_reply")
            ).all()
            assert Counter(r.status for r in rows) == {"queued": COUNT}
            assert {r.attempts for r in rows} == {1}
            assert session.scalars(select(Flag.state)).one() == "resolved"
    assert max(sent_to.values()) == 1  # nothing twice
    assert all(sent_to[(r.to_address, r.body)] == 1 for r in rows)  # nothing lost


def test_a_region_refusal_holds_the_message_but_not_the_pass(
    config: Config, sessions: sessionmaker[Session], now: datetime
) -> None:
    """21408 (no permission for the recipient's region) is about the account too, but only
    that message is held: the pass goes on to the next one."""
    with sessions.begin() as session:
        for n in range(2):
            person = make_participant(session, now, release_date=date(2026, 6, 1))
            enqueue(
                session,
                idempotency_key=f"abroad:{n}",
                purpose="coach_reply",
                channel="sms",
                to_address=person.phone,
                body="x",
                now=now,
                participant_id=person.id,
            )
    with FakeTwilio() as fake:
        config, transport = _twilio(config, fake)
        fake.failure = (400, 21408)
        tick(sessions, transport, config, now, rate_limited=False)
        assert fake.refused == 2
    with sessions() as session:
        messages = session.scalars(select(OutboundMessage)).all()
        assert {(m.status, m.attempts, m.error_code) for m in messages} == {("pending", 0, 21408)}
        assert all(m.send_after > now for m in messages)
        assert session.scalars(select(Flag.reason)).one() == "twilio_account"
