"""Sending: windows, quiet hours, claim-time checks, retries, unknown outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import Flag, OutboundMessage, Participant, PlannedContact
from bot.services.delivery import apply_status
from bot.services.inbound import InboundForm, store
from bot.services.inbound_retry import STUCK_AFTER
from bot.services.outbox import enqueue
from bot.services.outbox.claims import LEASE, recover_stale
from bot.transport.base import SendRequest, SendResult, TransportError
from bot.transport.simulated import SimulatedTransport
from scheduler.plan import plan
from scheduler.send import send_due
from scheduler.tick import tick
from tests.factories import make_participant, make_user
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _participant(sessions: sessionmaker[Session], **overrides: object) -> int:
    with sessions.begin() as session:
        values: dict[str, object] = {"release_date": date(2026, 3, 2), "enrolled_at": ENROLLED}
        values.update(overrides)
        return make_participant(session, ENROLLED, **values).id


def _run(sessions: sessionmaker[Session], transport: object, config: Config, now: datetime) -> None:
    tick(sessions, transport, config, now, rate_limited=False)  # type: ignore[arg-type]


def _states(sessions: sessionmaker[Session], pid: int) -> dict[str, str]:
    with sessions() as session:
        return {
            c.occurrence if c.kind != "reminder" else c.rule: c.state
            for c in session.scalars(
                select(PlannedContact).where(PlannedContact.participant_id == pid)
            )
        }


def test_due_checkin_is_sent_once_with_the_status_callback(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    now = utc("2026-03-03T15:05:00Z")  # 10:05 EST on day 1
    _run(sessions, transport, config, now)
    _run(sessions, transport, config, now + timedelta(minutes=1))
    assert len(transport.sent) == 2  # the welcome (window still open) and day 1
    assert all(
        m.status_callback == "https://checkin.example.org/twilio/status" for m in transport.sent
    )
    assert _states(sessions, pid)["day-1"] == "sent"
    with sessions() as session:
        keys = set(session.scalars(select(OutboundMessage.idempotency_key)))
    assert all(k.startswith("contact:") for k in keys) and len(keys) == 2


def test_a_week_offline_sends_only_what_is_in_its_window_and_records_the_rest(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    _run(sessions, transport, config, ENROLLED)  # plans; nothing due yet
    back = utc("2026-03-10T15:30:00Z")  # a week later, 11:30 EDT on day 8
    _run(sessions, transport, config, back)
    states = _states(sessions, pid)
    assert [m for m in transport.sent] == []  # day 8 has no check-in; welcome window closed
    assert states["welcome"] == "skipped"
    assert all(states[f"day-{d}"] == "skipped" for d in (1, 2, 3, 5, 7))
    with sessions() as session:
        reasons = set(
            session.scalars(
                select(PlannedContact.state_reason).where(PlannedContact.state == "skipped")
            )
        )
    assert reasons == {"window_closed"}


def test_nothing_is_sent_in_quiet_hours_and_it_goes_in_the_morning(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    enrolled = utc("2026-03-05T03:00:00Z")  # 22:00 EST
    _participant(sessions, enrolled_at=enrolled)
    _run(sessions, transport, config, enrolled + timedelta(minutes=1))
    _run(sessions, transport, config, utc("2026-03-05T12:59:00Z"))  # 07:59
    assert transport.sent == []
    _run(sessions, transport, config, utc("2026-03-05T13:00:00Z"))  # 08:00
    assert len(transport.sent) == 1


def test_a_checkin_never_goes_after_eight_pm_local(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    _run(sessions, transport, config, ENROLLED)
    _run(sessions, transport, config, utc("2026-03-04T01:00:00Z"))  # 20:00 EST on day 1
    assert _states(sessions, pid)["day-1"] == "skipped"
    assert all("day" not in m.idempotency_key for m in transport.sent)


def test_stop_between_enqueue_and_claim_cancels_the_message(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> None:
    pid = _participant(sessions, release_date=date(2026, 6, 1))
    with sessions.begin() as session:
        enqueue(
            session,
            idempotency_key="test:1",
            purpose="checkin",
            channel="sms",
            to_address="+13125550199",
            body="hi",
            now=now,
            participant_id=pid,
        )
        participant = session.get(Participant, pid)
        assert participant is not None
        participant.status = "opted_out"
    _run(sessions, transport, config, now)
    assert transport.sent == []
    with sessions() as session:
        message = session.scalars(select(OutboundMessage)).one()
        assert (message.status, message.error_message) == ("cancelled", "participant_opted_out")


def test_paused_participant_still_gets_a_crisis_reply_but_no_checkin(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> None:
    pid = _participant(sessions, status="paused")
    with sessions.begin() as session:
        for key, purpose in (("a", "crisis_reply"), ("b", "coach_reply")):
            enqueue(
                session,
                idempotency_key=key,
                purpose=purpose,
                channel="sms",
                to_address="+13125550198",
                body="x",
                now=now,
                participant_id=pid,
                ignore_quiet_hours=purpose == "crisis_reply",
            )
    _run(sessions, transport, config, now)
    assert [m.idempotency_key for m in transport.sent] == ["a"]


@dataclass
class ScriptedTransport:
    """Raises the scripted errors in turn, then succeeds."""

    errors: list[TransportError]
    name: str = "scripted"
    sent: list[SendRequest] = field(default_factory=list)

    def send(self, request: SendRequest) -> SendResult:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(request)
        return SendResult(provider_sid=f"SM{len(self.sent):032d}", status="queued")


def _one_message(sessions: sessionmaker[Session], now: datetime) -> int:
    pid = _participant(sessions, release_date=date(2026, 6, 1))  # nothing planned is due
    with sessions.begin() as session:
        return enqueue(
            session,
            idempotency_key="m",
            purpose="coach_reply",
            channel="sms",
            to_address="+13125550197",
            body="x",
            now=now,
            participant_id=pid,
        ).message.id


def test_retryable_error_is_retried_after_backoff_and_then_sent(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> None:
    mid = _one_message(sessions, now)
    transport = ScriptedTransport([TransportError("429", permanent=False, code=20429)])
    _run(sessions, transport, config, now)
    with sessions() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None
        assert (message.status, message.attempts) == ("pending", 1)
        assert message.send_after > now
        retry_at = message.send_after
    _run(sessions, transport, config, retry_at)
    with sessions() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None and message.status == "queued" and message.attempts == 2
    assert len(transport.sent) == 1


def test_permanent_error_is_never_retried_and_flags_the_participant(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> None:
    mid = _one_message(sessions, now)
    transport = ScriptedTransport([TransportError("21211", permanent=True, code=21211)])
    _run(sessions, transport, config, now)
    _run(sessions, transport, config, now + timedelta(hours=1))
    with sessions() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None
        assert (message.status, message.error_code, message.attempts) == ("failed", 21211, 1)
        flag = session.scalars(select(Flag)).one()
        assert (flag.reason, flag.severity) == ("delivery_failed", "high")
    assert transport.sent == []


def test_timeout_after_the_request_left_is_unknown_flagged_and_not_resent(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> None:
    mid = _one_message(sessions, now)
    transport = ScriptedTransport([TransportError("timeout", permanent=False, request_sent=True)])
    _run(sessions, transport, config, now)
    _run(sessions, transport, config, now + timedelta(hours=1))
    with sessions() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None and message.status == "unknown"
        flag = session.scalars(select(Flag)).one()
        assert (flag.reason, flag.severity) == ("delivery_unknown", "high")
    assert transport.sent == []


def test_a_claim_abandoned_by_a_dead_worker_becomes_unknown_not_a_second_send(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> None:
    mid = _one_message(sessions, now)
    with sessions.begin() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None
        message.status, message.claimed_at, message.claimed_by = "sending", now, "dead:1"
        message.handed_at = now  # handed to the transport: it may have left
    with sessions.begin() as session:
        assert recover_stale(session, now + LEASE - timedelta(seconds=1)) == 0
    _run(sessions, transport, config, now + LEASE + timedelta(seconds=1))
    with sessions() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None and message.status == "unknown"
        assert session.scalars(select(Flag.reason)).one() == "delivery_unknown"
    assert transport.sent == []


def test_a_claim_a_dead_worker_never_handed_over_goes_back_to_pending_and_is_sent_once(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> None:
    mid = _one_message(sessions, now)
    with sessions.begin() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None
        message.status, message.claimed_at, message.claimed_by = "sending", now, "dead:1"
        message.attempts = 1
    _run(sessions, transport, config, now + LEASE + timedelta(seconds=1))
    with sessions() as session:
        message = session.get(OutboundMessage, mid)
        assert message is not None and message.status == "queued"
        assert message.attempts == 1  # the dead claim's attempt was given back
        assert session.scalars(select(Flag.reason)).all() == []
    assert len(transport.sent) == 1


def test_a_stalled_worker_never_sends_a_claim_recovered_as_never_handed(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, now: datetime
) -> None:
    """Worker A claimed and stalled before handing the claim over; the lease ran out, the row
    went back to pending and worker B took it. A's late attempt to mark it handed fails, so A
    never sends it: one text."""
    from bot.services.outbox.claims import SendCounts, claim_batch, mark_handed

    _one_message(sessions, now)
    with sessions.begin() as session:
        claims, _ = claim_batch(session, now, "w:a", config, SendCounts(), 10)
    later = now + LEASE + timedelta(seconds=1)
    _run(sessions, transport, config, later)  # worker B: recovers, claims, sends
    with sessions.begin() as session:
        assert mark_handed(session, claims, "w:a", later) == set()
    assert len(transport.sent) == 1


def test_after_downtime_only_the_latest_due_reminder_of_an_appointment_goes(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    from tests.factories import make_appointment

    pid = _participant(sessions, release_date=date(2026, 6, 1))
    with sessions.begin() as session:
        participant = session.get(Participant, pid)
        assert participant is not None
        make_appointment(session, participant, utc("2026-03-20T18:00:00Z"), ENROLLED)
    _run(sessions, transport, config, ENROLLED)
    _run(sessions, transport, config, utc("2026-03-19T15:30:00Z"))  # 3d and 1d both due
    states = _states(sessions, pid)
    assert (states["reminder.3d"], states["reminder.1d"]) == ("skipped", "sent")
    assert len(transport.sent) == 1


def test_a_status_callback_that_beat_the_sid_to_the_database_is_applied_by_the_next_tick(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    now = utc("2026-03-03T15:05:00Z")
    _run(sessions, transport, config, now)
    with sessions.begin() as session:
        welcome = session.scalars(
            select(OutboundMessage).where(OutboundMessage.participant_id == pid)
        ).first()
        assert welcome is not None and welcome.provider_sid is not None
        sid = welcome.provider_sid
        # Replay the race: the callback came while the SID was not yet committed.
        welcome.provider_sid = None
    with sessions.begin() as session:
        apply_status(session, provider_sid=sid, twilio_status="failed", error_code="30005", now=now)
    with sessions.begin() as session:
        session.get_one(OutboundMessage, welcome.id).provider_sid = sid
    summary = tick(sessions, transport, config, now + timedelta(minutes=1), rate_limited=False)
    assert summary.early_statuses == 1
    with sessions() as session:
        assert session.get_one(OutboundMessage, welcome.id).status == "failed"
        flag = session.scalars(select(Flag).where(Flag.reason == "delivery_failed")).one()
        assert flag.participant_id == pid


@dataclass
class UnsubscribedOnce:
    """Answers the first send with 21610 (the person texted STOP to the carrier)."""

    attempts: list[SendRequest] = field(default_factory=list)
    name: str = "unsubscribed-once"

    def send(self, request: SendRequest) -> SendResult:
        self.attempts.append(request)
        if len(self.attempts) == 1:
            raise TransportError("21610", permanent=True, code=21610)
        return SendResult(provider_sid=f"SM{len(self.attempts):032d}", status="queued")


def test_a_persons_second_due_text_waits_for_the_first_ones_outcome(
    sessions: sessionmaker[Session], config: Config
) -> None:
    pid = _participant(sessions)
    transport = UnsubscribedOnce()
    # 10:05 EST on day 1: the welcome (7-day window) and day 1 are both due in one tick.
    _run(sessions, transport, config, utc("2026-03-03T15:05:00Z"))
    assert len(transport.attempts) == 1  # the 21610 opted them out before the second claim
    states = _states(sessions, pid)
    assert sorted(states[k] for k in ("welcome", "day-1")) == ["cancelled", "skipped"]
    with sessions() as session:
        participant = session.get(Participant, pid)
        assert participant is not None and participant.status == "opted_out"


def test_a_persons_second_due_text_in_the_next_batch_waits_for_the_first_ones_outcome(
    sessions: sessionmaker[Session], config: Config
) -> None:
    # Batches of one: the day-1 check-in is in the batch after the welcome's, the batch that
    # PostgreSQL's sender reads ahead while the welcome is being sent.
    pid = _participant(sessions)
    transport = UnsubscribedOnce()
    now = utc("2026-03-03T15:05:00Z")
    with sessions.begin() as session:
        plan(session, now)
    send_due(sessions, transport, config, now, worker_id="w:1", batch=1)  # type: ignore[arg-type]
    assert len(transport.attempts) == 1  # the 21610 opted them out before the second claim
    states = _states(sessions, pid)
    assert sorted(states[k] for k in ("welcome", "day-1")) == ["cancelled", "skipped"]
    with sessions() as session:
        assert session.scalars(select(OutboundMessage.status)).all() == ["failed"]


@dataclass
class CheckingTransport:
    """Reads, from its own connection, the outbox row of each request it is handed."""

    sessions: sessionmaker[Session]
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    name: str = "checking"

    def send(self, request: SendRequest) -> SendResult:
        with self.sessions() as session:
            row = session.scalars(
                select(OutboundMessage).where(
                    OutboundMessage.idempotency_key == request.idempotency_key
                )
            ).one()
            self.seen.append((row.status, row.claimed_by))
        return SendResult(provider_sid=f"SM{len(self.seen):032d}", status="queued")


def test_a_due_contact_is_committed_as_a_claimed_outbox_row_before_its_send(
    sessions: sessionmaker[Session], config: Config
) -> None:
    _participant(sessions)
    transport = CheckingTransport(sessions)
    tick(sessions, transport, config, utc("2026-03-03T15:05:00Z"), worker_id="w:1")  # type: ignore[arg-type]
    assert transport.seen == [("sending", "w:1"), ("sending", "w:1")]


def test_each_person_gets_their_own_names_in_a_batch_rendered_together(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    from tests.factories import make_user

    with sessions.begin() as session:
        dana = make_user(session, ENROLLED, name="Dana Reyes")
    people = {
        _participant(sessions, first_name=name, coach_id=coach, release_date=date(2026, 3, 3)): (
            name,
            expected_coach,
        )
        for name, coach, expected_coach in (
            ("Ana", dana.id, "Dana"),
            ("Ben", None, "your peer coach"),
            ("Ana", None, "your peer coach"),
            ("Ben", dana.id, "Dana"),
        )
    }
    _run(sessions, transport, config, utc("2026-03-03T15:05:00Z"))  # everyone's welcome
    with sessions() as session:
        bodies = dict(
            session.execute(select(OutboundMessage.participant_id, OutboundMessage.body)).all()
        )
    assert bodies.keys() == people.keys()
    for pid, (name, coach) in people.items():
        assert bodies[pid].startswith(f"Hi {name}, it's {coach} from ")


def test_bodies_and_deadlines_are_stored_exactly_as_rendered(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    # Quotes, commas, braces, a backslash and non-ASCII: what an array's text form must escape.
    name = 'Zoë "Z" O\'Neil, {Jr.} \\ NULL'
    pid = _participant(sessions, first_name=name, release_date=date(2026, 3, 3))
    _run(sessions, transport, config, utc("2026-03-03T15:05:00Z"))
    assert [m.body.startswith(f"Hi {name}, ") for m in transport.sent] == [True]
    with sessions() as session:
        message = session.scalars(select(OutboundMessage)).one()
        contact = session.get(PlannedContact, message.planned_contact_id)
        assert contact is not None and contact.participant_id == pid
        assert message.body == transport.sent[0].body
        assert message.not_after == contact.not_after
        assert message.claimed_by is not None and message.attempts == 1


def test_a_crisis_text_the_webhook_did_not_finish_is_answered_and_paged_by_the_next_tick(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    night = utc("2026-03-03T08:00:00Z")  # 03:00 in New York: quiet hours
    with sessions.begin() as session:
        coach = make_user(session, ENROLLED, role="coach", phone="+13125550777")
        person = make_participant(
            session,
            ENROLLED,
            release_date=date(2026, 3, 2),
            enrolled_at=ENROLLED,
            coach_id=coach.id,
        )
        phone = person.phone
        # The web process died after storing the text, before processing it.
        store(session, InboundForm("SMdied", phone, "+15550100999", "i want to die", 0), now=night)
    summary = tick(sessions, transport, config, night + STUCK_AFTER, rate_limited=False)
    assert summary.inbound_retried == 1
    sent_to = [m.to for m in transport.sent]
    assert sent_to.count(phone) == 1  # the crisis reply, in quiet hours, once
    assert "+13125550777" in sent_to  # the coach's page
    crisis_reply = next(m for m in transport.sent if m.to == phone)
    assert "988" in crisis_reply.body


def test_a_crisis_text_that_also_said_stop_gets_no_late_text_but_its_page(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    # The webhook's TwiML answers the text itself; a text sent later would go to a number that
    # has opted out. The flag and the page stand, and a person follows up.
    night = utc("2026-03-03T08:00:00Z")
    with sessions.begin() as session:
        coach = make_user(session, ENROLLED, role="coach", phone="+13125550777")
        person = make_participant(session, ENROLLED, coach_id=coach.id)
        phone = person.phone
        store(
            session,
            InboundForm(
                "SMboth", phone, "+15550100999", "stop texting me, i want to kill myself", 0
            ),
            now=night,
        )
    tick(sessions, transport, config, night + STUCK_AFTER, rate_limited=False)
    sent_to = [m.to for m in transport.sent]
    assert phone not in sent_to and "+13125550777" in sent_to


def test_a_late_ordinary_reply_waits_for_the_morning_and_goes_once(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    night = utc("2026-03-03T08:00:00Z")  # 03:00 in New York
    pid = _participant(sessions)
    with sessions.begin() as session:
        phone = session.get_one(Participant, pid).phone
        store(session, InboundForm("SMhelp", phone, "+15550100999", "HELP", 0), now=night)
    tick(sessions, transport, config, night + STUCK_AFTER, rate_limited=False)
    assert [m for m in transport.sent if m.idempotency_key == "reply:SMhelp"] == []
    morning = utc("2026-03-03T13:05:00Z")  # 08:05
    tick(sessions, transport, config, morning, rate_limited=False)
    tick(sessions, transport, config, morning + timedelta(minutes=1), rate_limited=False)
    helps = [m for m in transport.sent if m.idempotency_key == "reply:SMhelp"]
    assert len(helps) == 1
