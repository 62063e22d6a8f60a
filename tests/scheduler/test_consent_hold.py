"""`require_consent_evidence` (issue 19.3): while it is on, every text to a participant without a
recorded consent source is held, at enqueue, at claim and at the last look; never cancelled,
it goes once a source is recorded (while its window is open). What answers the person goes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import OutboundMessage, Participant, PlannedContact
from bot.services import consent
from bot.services.inbound import InboundForm, InboundOutcome, receive
from bot.services.outbox import enqueue
from bot.services.outbox.claims import SendCounts, claim_batch
from bot.services.sendability import (
    CRISIS_RECHECK,
    EVIDENCE_HOLD,
    Hold,
    hold_for,
)
from bot.services.settings import set_setting
from bot.transport.simulated import SimulatedTransport
from scheduler.send import send_batch
from scheduler.tick import tick
from tests.factories import make_appointment, make_participant, make_user
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WELCOME_DUE = utc("2026-03-02T15:05:00Z")  # 10:05 EST on the release date
_sids = itertools.count(1)


# --- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["welcome", "checkin", "reminder", "coach_reply"])
def test_without_evidence_every_text_but_an_answer_is_held(purpose: str) -> None:
    assert hold_for(
        purpose, now=WELCOME_DUE, paused_until=None, crisis_open=False, evidence_missing=True
    ) == Hold(WELCOME_DUE + CRISIS_RECHECK, EVIDENCE_HOLD)


@pytest.mark.parametrize("purpose", ["reply", "crisis_reply", "page"])
def test_answers_crisis_replies_and_pages_are_never_held_for_evidence(purpose: str) -> None:
    assert (
        hold_for(
            purpose, now=WELCOME_DUE, paused_until=None, crisis_open=False, evidence_missing=True
        )
        is None
    )


def test_a_staff_reply_to_someone_who_texted_in_the_last_day_answers_them() -> None:
    def hold(texted_ago: timedelta) -> Hold | None:
        return hold_for(
            "coach_reply",
            now=WELCOME_DUE,
            paused_until=None,
            crisis_open=False,
            evidence_missing=True,
            last_inbound=WELCOME_DUE - texted_ago,
        )

    assert hold(timedelta(hours=23)) is None
    assert hold(timedelta(hours=25)) == Hold(WELCOME_DUE + CRISIS_RECHECK, EVIDENCE_HOLD)


def test_with_evidence_or_the_setting_off_nothing_is_held() -> None:
    assert hold_for("checkin", now=WELCOME_DUE, paused_until=None, crisis_open=False) is None


# --- through the scheduler -----------------------------------------------------------------


def _person(sessions: sessionmaker[Session], *, evidence: bool = False) -> int:
    """Someone released on 2 March; consent asserted by an import, with a source if asked."""
    with sessions.begin() as session:
        person = make_participant(
            session, ENROLLED, release_date=date(2026, 3, 2), enrolled_at=ENROLLED
        )
        consent.record_consent(
            session,
            [(person.id, consent.Evidence("signed enrolment form" if evidence else None))],
            now=ENROLLED,
            recorder=consent.Recorder("import", label="cli:ana", import_file="people.csv"),
        )
        return person.id


def _require(sessions: sessionmaker[Session], on: bool = True) -> None:
    with sessions.begin() as session:
        set_setting(
            session, "consent", {"require_consent_evidence": on}, now=ENROLLED, user_id=None
        )


def _record_source(sessions: sessionmaker[Session], pid: int, at: datetime) -> None:
    with sessions.begin() as session:
        consent.record_evidence(
            session,
            session.get_one(Participant, pid),
            consent.Evidence("signed enrolment form", date(2026, 2, 27)),
            now=at,
            recorder=consent.Recorder("dashboard"),
        )


def _run(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> list[str]:
    """One tick; the purposes of what it sent."""
    before = len(transport.sent)
    tick(sessions, transport, config, now, rate_limited=False)
    keys = [m.idempotency_key for m in transport.sent[before:]]
    with sessions() as session:
        return sorted(
            session.scalars(
                select(OutboundMessage.purpose).where(OutboundMessage.idempotency_key.in_(keys))
            )
        )


def _contact(sessions: sessionmaker[Session], pid: int, occurrence: str) -> PlannedContact:
    with sessions() as session:
        return session.scalars(
            select(PlannedContact).where(
                PlannedContact.participant_id == pid, PlannedContact.occurrence == occurrence
            )
        ).one()


def _staff_text(sessions: sessionmaker[Session], pid: int, at: datetime, key: str) -> int:
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        coach = make_user(session, ENROLLED)
        return enqueue(
            session,
            idempotency_key=f"coach_reply:{pid}:{key}",
            purpose="coach_reply",
            channel="sms",
            to_address=person.phone,
            body="Hi Sam, it's your coach. Call me when you can.",
            now=at,
            participant_id=pid,
            created_by_id=coach.id,
            ignore_quiet_hours=True,
        ).message.id


def _texted(
    sessions: sessionmaker[Session], config: Config, pid: int, body: str, at: datetime
) -> InboundOutcome:
    with sessions() as session:
        phone = session.get_one(Participant, pid).phone
    return receive(
        sessions,
        InboundForm(
            message_sid=f"SM{next(_sids):032d}",
            from_address=phone,
            to_address="+15550100999",
            body=body,
            num_media=0,
        ),
        now=at,
        config=config,
    )


def test_with_the_setting_off_a_person_without_a_source_gets_their_welcome(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    _person(sessions)
    assert _run(sessions, transport, config, WELCOME_DUE) == ["welcome"]


def test_with_the_setting_on_a_person_with_a_source_gets_their_welcome(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    _person(sessions, evidence=True)
    _require(sessions)
    assert _run(sessions, transport, config, WELCOME_DUE) == ["welcome"]


def test_the_welcome_waits_for_a_consent_source_and_goes_once_one_is_recorded(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person(sessions)
    _require(sessions)

    assert _run(sessions, transport, config, WELCOME_DUE) == []
    welcome = _contact(sessions, pid, "welcome")
    assert welcome.state == "planned" and welcome.send_after > WELCOME_DUE  # held, not cancelled
    assert _run(sessions, transport, config, WELCOME_DUE + timedelta(hours=2)) == []

    recorded = WELCOME_DUE + timedelta(hours=3)
    _record_source(sessions, pid, recorded)
    assert _run(sessions, transport, config, recorded + CRISIS_RECHECK) == ["welcome"]
    assert _contact(sessions, pid, "welcome").state == "sent"


def test_reminders_and_staff_texts_are_held_too_but_not_cancelled(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person(sessions)
    with sessions.begin() as session:
        # Imported late: its latest passed reminder is due at once.
        make_appointment(
            session, session.get_one(Participant, pid), utc("2026-03-03T15:00:00Z"), ENROLLED
        )
    _require(sessions)
    staff_text = _staff_text(sessions, pid, WELCOME_DUE, "first")

    assert _run(sessions, transport, config, WELCOME_DUE) == []
    with sessions() as session:
        row = session.get_one(OutboundMessage, staff_text)
        assert row.status == "pending" and row.send_after > WELCOME_DUE
        reminders = session.scalars(
            select(PlannedContact).where(
                PlannedContact.participant_id == pid, PlannedContact.kind == "reminder"
            )
        ).all()
        assert reminders and all(r.state != "sent" for r in reminders)

    _record_source(sessions, pid, WELCOME_DUE + timedelta(minutes=10))
    sent = _run(sessions, transport, config, WELCOME_DUE + timedelta(minutes=16))
    assert "coach_reply" in sent and "welcome" in sent and "reminder" in sent


def test_what_answers_the_person_still_goes(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person(sessions)
    _require(sessions)
    texted_at = WELCOME_DUE - timedelta(hours=1)
    help_reply = _texted(sessions, config, pid, "HELP", texted_at)
    assert help_reply.reply is not None  # the webhook's own answer
    _staff_text(sessions, pid, WELCOME_DUE, "answer")
    with sessions.begin() as session:
        enqueue(
            session,
            idempotency_key=f"crisis_reply:{pid}:late",
            purpose="crisis_reply",
            channel="sms",
            to_address=session.get_one(Participant, pid).phone,
            body="If you are in danger call 911. You can call or text 988 any time.",
            now=WELCOME_DUE,
            participant_id=pid,
            ignore_quiet_hours=True,
        )

    assert _run(sessions, transport, config, WELCOME_DUE) == ["coach_reply", "crisis_reply"]


def test_a_held_check_in_whose_window_closes_is_skipped_never_sent_late(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person(sessions)
    _require(sessions)
    # Day 1's window ends at 20:00 EST (01:00 UTC); the last pass is at 19:57 EST.
    for at in ("2026-03-03T15:05:00Z", "2026-03-03T20:00:00Z", "2026-03-04T00:57:00Z"):
        assert _run(sessions, transport, config, utc(at)) == []
    day1 = _contact(sessions, pid, "day-1")
    assert (day1.state, day1.state_reason) == ("skipped", EVIDENCE_HOLD)
    assert _contact(sessions, pid, "welcome").state == "planned"  # open for 7 days


def test_a_claim_made_before_the_setting_went_on_does_not_leave_at_the_last_look(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _person(sessions)
    message_id = _staff_text(sessions, pid, WELCOME_DUE, "claimed")
    counts = SendCounts()
    with sessions.begin() as session:
        claims, _looked = claim_batch(session, WELCOME_DUE, "w:1", config, counts, 10)
    assert [c.message_id for c in claims] == [message_id]
    _require(sessions)  # switched on after the claim committed

    out_of_time = send_batch(
        sessions,
        transport,
        WELCOME_DUE,
        claims,
        worker_id="w:1",
        limiter=None,
        counts=counts,
        config=config,
    )
    assert transport.sent == [] and out_of_time  # the next tick's claim decides
    with sessions.begin() as session:
        assert session.get_one(OutboundMessage, message_id).status == "pending"
        again, _looked = claim_batch(session, WELCOME_DUE, "w:1", config, counts, 10)
    assert again == []
    with sessions() as session:
        row = session.get_one(OutboundMessage, message_id)
        assert row.status == "pending" and row.send_after == WELCOME_DUE + CRISIS_RECHECK
