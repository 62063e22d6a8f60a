from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import (
    Appointment,
    Expectation,
    Flag,
    FlagEvent,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
    Template,
)
from bot.services import inbound
from bot.services.expectations import create_expectations
from bot.services.flags import raise_flag
from bot.services.inbound import (
    LATE_REPLY_VALID_FOR,
    InboundForm,
    receive,
    reminded_appointment,
    store,
)
from bot.services.inbound_retry import RETRY_STUCK_FOR, STUCK_AFTER, process_stuck
from tests.factories import make_appointment, make_participant, make_sent_message, make_user

_n = iter(range(1, 10**6))


def form(sender: str, body: str, sid: str | None = None) -> InboundForm:
    return InboundForm(
        message_sid=sid or f"SM{next(_n):032d}",
        from_address=sender,
        to_address="+15550100999",
        body=body,
        num_media=0,
        raw_form={"Body": [body], "From": [sender]},
    )


def _contact(
    session: Session, person: Participant, now: datetime, appointment: Appointment | None = None
) -> PlannedContact:
    contact = PlannedContact(
        participant_id=person.id,
        kind="reminder" if appointment else "checkin",
        rule="reminder.1d" if appointment else "checkin",
        occurrence=f"n-{next(_n)}",
        version="1",
        appointment_id=appointment.id if appointment else None,
        template_key="reminder.other.1d" if appointment else "checkin.1",
        send_after=now,
        not_after=now + timedelta(hours=5),
        state="planned",
        created_at=now,
    )
    session.add(contact)
    session.flush()
    return contact


def _outbox(
    session: Session,
    person: Participant,
    now: datetime,
    *,
    status: str,
    contact: PlannedContact | None = None,
    purpose: str = "checkin",
) -> OutboundMessage:
    message = OutboundMessage(
        idempotency_key=f"k{next(_n)}",
        participant_id=person.id,
        planned_contact_id=contact.id if contact else None,
        purpose=purpose,
        channel="sms",
        to_address=person.phone,
        body="hello",
        status=status,
        send_after=now,
        created_at=now,
    )
    session.add(message)
    session.flush()
    return message


def test_storing_the_same_sid_twice_keeps_one_row(session: Session, now: datetime) -> None:
    first = store(session, form("+13125550001", "hi", sid="SMdup"), now=now)
    second = store(session, form("+13125550001", "hi", sid="SMdup"), now=now)
    assert first is not None and second is None
    assert len(session.scalars(select(InboundMessage)).all()) == 1


def test_stop_cancels_planned_contacts_pending_outbox_and_expectations(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    planned = _contact(session, person, now)
    pending = _outbox(session, person, now, status="pending")
    delivered = _outbox(session, person, now, status="delivered")
    expectation = Expectation(
        participant_id=person.id, kind="reply", created_at=now, due_at=now + timedelta(days=2)
    )
    session.add(expectation)
    session.commit()
    outcome = receive(sessions, form(person.phone, "STOP"), now=now, config=config)
    assert outcome.reply is None and outcome.intent == "stop"
    session.expire_all()
    assert session.get_one(PlannedContact, planned.id).state == "cancelled"
    assert session.get_one(OutboundMessage, pending.id).status == "cancelled"
    assert session.get_one(OutboundMessage, delivered.id).status == "delivered"
    assert session.get_one(Expectation, expectation.id).state == "cancelled"
    again = session.get_one(Participant, person.id)
    assert again.status == "opted_out" and again.opted_out_at == now


def test_a_second_stop_changes_nothing_and_sends_nothing(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    session.commit()
    receive(sessions, form(person.phone, "stop texting me"), now=now, config=config)
    later = receive(sessions, form(person.phone, "stop texting me"), now=now, config=config)
    assert later.reply is None
    assert len(session.scalars(select(OutboundMessage)).all()) == 1  # the first confirmation


def test_help_from_an_opted_out_number_gets_no_text(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now, status="opted_out", opted_out_at=now)
    session.commit()
    assert receive(sessions, form(person.phone, "HELP"), now=now, config=config).reply is None


def test_a_crisis_with_an_opt_out_records_both_and_answers_with_988(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    session.commit()
    outcome = receive(
        sessions,
        form(person.phone, "stop texting me, i want to kill myself"),
        now=now,
        config=config,
    )
    assert outcome.intent == "crisis"
    assert outcome.reply is not None and "988" in outcome.reply
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "opted_out"
    reasons = set(session.scalars(select(Flag.reason)))
    assert reasons == {"crisis", "opted_out"}


def test_an_unknown_sender_in_crisis_gets_988_and_a_coordinator_is_paged(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    coordinator = make_user(session, now, role="coordinator")
    session.commit()
    outcome = receive(sessions, form("+13125550666", "i want to die"), now=now, config=config)
    assert outcome.reply is not None and "988" in outcome.reply
    flag = session.scalars(select(Flag)).one()
    assert (flag.reason, flag.severity, flag.sender_address) == ("crisis", "urgent", "+13125550666")
    page = session.scalars(select(OutboundMessage).where(OutboundMessage.purpose == "page")).one()
    assert page.user_id == coordinator.id


def test_a_broken_stored_template_falls_back_to_the_default(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    session.add(Template(key="crisis", language="en", body="{{ nope }}", version=2, updated_at=now))
    session.commit()
    outcome = receive(sessions, form(person.phone, "I want to end my life"), now=now, config=config)
    assert outcome.reply is not None and "988" in outcome.reply and "911" in outcome.reply


def test_a_retry_returns_the_reply_given_the_first_time(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    session.commit()
    first = receive(sessions, form(person.phone, "help", sid="SMretry"), now=now, config=config)
    again = receive(sessions, form(person.phone, "help", sid="SMretry"), now=now, config=config)
    assert again.duplicate and again.reply == first.reply and first.reply is not None


def test_yes_goes_to_the_nearest_reminded_appointment(
    session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    not_reminded = make_appointment(session, person, now + timedelta(hours=3), now)
    reminded_later = make_appointment(session, person, now + timedelta(days=2), now)
    reminded_sooner = make_appointment(session, person, now + timedelta(days=1), now)
    past = make_appointment(session, person, now - timedelta(hours=1), now)
    cancelled = make_appointment(session, person, now + timedelta(hours=5), now, status="cancelled")
    unsent = make_appointment(session, person, now + timedelta(hours=6), now)
    for appointment in (reminded_later, reminded_sooner, past, cancelled):
        contact = _contact(session, person, now, appointment)
        _outbox(session, person, now, status="delivered", contact=contact, purpose="reminder")
    contact = _contact(session, person, now, unsent)
    _outbox(session, person, now, status="pending", contact=contact, purpose="reminder")
    assert not_reminded.id != reminded_sooner.id
    found = reminded_appointment(session, person, now)
    assert found is not None and found.id == reminded_sooner.id


def test_an_answer_satisfies_the_confirm_expectation(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    appointment = make_appointment(session, person, now + timedelta(days=1), now)
    contact = _contact(session, person, now, appointment)
    reminder = _outbox(
        session, person, now, status="delivered", contact=contact, purpose="reminder"
    )
    expectation = Expectation(
        participant_id=person.id,
        kind="confirm",
        appointment_id=appointment.id,
        outbound_message_id=reminder.id,
        created_at=now,
        due_at=now + timedelta(hours=1),
    )
    session.add(expectation)
    session.commit()
    outcome = receive(sessions, form(person.phone, "C"), now=now, config=config)
    assert outcome.reply is not None and "Thanks for confirming" in outcome.reply
    session.expire_all()
    assert session.get_one(Expectation, expectation.id).state == "satisfied"
    assert session.get_one(Appointment, appointment.id).responded_at == now


def test_a_text_uses_one_pooled_connection_for_both_transactions(
    sessions: sessionmaker[Session], session: Session, engine: Engine, now: datetime, config: Config
) -> None:
    # Every text pays for each checkout (and its liveness ping): store and process share one.
    person = make_participant(session, now)
    session.commit()
    checkouts: list[object] = []

    def on_checkout(*args: object) -> None:
        checkouts.append(args)

    event.listen(engine, "checkout", on_checkout)
    try:
        outcome = receive(sessions, form(person.phone, "doing ok today"), now=now, config=config)
    finally:
        event.remove(engine, "checkout", on_checkout)
    assert outcome.intent == "none" and not outcome.failed
    assert len(checkouts) == 1


def test_an_ordinary_reply_costs_two_statements_on_postgresql_and_four_on_sqlite(
    sessions: sessionmaker[Session], session: Session, engine: Engine, now: datetime, config: Config
) -> None:
    # The hot path of the webhook: store (sender matched inside the INSERT), satisfy "reply by"
    # expectations and look for a no_reply flag (both unless the person has opted out, read in
    # the statements), mark the message processed. No ORM load of the message or the person.
    # On PostgreSQL all but the INSERT are one statement (each committing itself).
    person = make_participant(session, now)
    session.commit()
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
        if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "PRAGMA", "SELECT 1")):
            statements.append(sql)

    event.listen(engine, "before_cursor_execute", count)
    try:
        receive(sessions, form(person.phone, "doing ok today"), now=now, config=config)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    if engine.dialect.name == "postgresql":
        expected = "INSERT inbound, WITH (SELECT flag, UPDATE expectations, UPDATE inbound)"
        assert len(statements) == 2, f"expected {expected}, got {statements}"
    else:
        expected = "INSERT inbound, UPDATE expectations, SELECT flag, UPDATE inbound"
        assert len(statements) == 4, f"expected {expected}, got {statements}"


def test_the_stored_row_is_returned_with_the_sender_matched(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    stored = store(session, form(f"whatsapp:{person.phone}", "hola"), now=now)
    assert stored is not None
    assert stored.participant_id == person.id and stored.channel == "whatsapp"
    unknown = store(session, form("+13125559999", "who is this"), now=now)
    assert unknown is not None and unknown.participant_id is None


# --- texts their webhook did not finish -------------------------------------------------------


def _interrupt_first_processing(
    monkeypatch: pytest.MonkeyPatch,
    *,
    meanwhile: Callable[[], None] = lambda: None,
    fail: bool = True,
) -> None:
    """The webhook's first processing: `meanwhile` happens (a tick, say), then the database
    fails, if `fail`. Later processing runs normally."""
    real = inbound.process
    calls = iter(range(10**6))

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == 0:
            meanwhile()
            if fail:
                raise OperationalError("UPDATE ...", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr(inbound, "process", interrupted)


def test_a_crisis_text_whose_processing_failed_is_flagged_paged_and_answered_by_the_next_tick(
    sessions: sessionmaker[Session],
    session: Session,
    now: datetime,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coach = make_user(session, now, role="coach", phone="+13125550777")
    person = make_participant(session, now, coach_id=coach.id)
    session.commit()
    _interrupt_first_processing(monkeypatch)
    outcome = receive(sessions, form(person.phone, "i want to kill myself"), now=now, config=config)
    assert outcome.failed and outcome.reply is None
    assert session.scalars(select(Flag)).all() == []  # nobody knows yet
    session.commit()
    assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    session.expire_all()
    message = session.scalars(select(InboundMessage)).one()
    assert (message.processing_state, message.intent) == ("processed", "crisis")
    flag = session.scalars(select(Flag)).one()
    assert (flag.reason, flag.severity) == ("crisis", "urgent")
    by_purpose = {m.purpose: m for m in session.scalars(select(OutboundMessage))}
    assert by_purpose["page"].user_id == coach.id
    reply = by_purpose["crisis_reply"]
    assert reply.status == "pending" and reply.ignore_quiet_hours and reply.not_after is None
    assert "988" in reply.body


def test_a_late_ordinary_reply_keeps_quiet_hours_and_expires(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    store(session, form(person.phone, "HELP"), now=now)  # stored, never processed
    session.commit()
    later = now + timedelta(minutes=5)
    assert process_stuck(sessions, later, config) == 1
    reply = session.scalars(select(OutboundMessage)).one()
    assert (reply.status, reply.ignore_quiet_hours) == ("pending", False)
    assert reply.not_after == later + LATE_REPLY_VALID_FOR


def test_only_texts_past_the_webhook_and_within_the_retry_window_are_retried(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now)
    store(session, form(person.phone, "hi", sid="SMyoung"), now=now)
    store(session, form(person.phone, "hi", sid="SMold"), now=now - RETRY_STUCK_FOR)
    session.commit()
    # The webhook may still be working on the young one; the old one is a coach's to read.
    assert process_stuck(sessions, now + timedelta(seconds=30), config) == 0
    assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    session.expire_all()
    states = {m.message_sid: m.processing_state for m in session.scalars(select(InboundMessage))}
    assert states == {"SMyoung": "processed", "SMold": "received"}
    session.commit()  # (SQLite: an open reader here would hold the write lock)
    assert process_stuck(sessions, now + STUCK_AFTER, config) == 0  # done is done


def test_a_text_that_fails_again_stays_failed_and_the_tick_goes_on(
    sessions: sessionmaker[Session],
    session: Session,
    now: datetime,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = make_participant(session, now)
    store(session, form(person.phone, "hi", sid="SMbroken"), now=now)
    store(session, form(person.phone, "hello", sid="SMfine"), now=now)
    session.commit()
    real = inbound.process

    def broken_for_one(session: Session, message: InboundMessage, **kwargs: Any) -> Any:
        if message.message_sid == "SMbroken":
            raise RuntimeError("bug")
        return real(session, message, **kwargs)

    monkeypatch.setattr(inbound, "process", broken_for_one)
    assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    session.expire_all()
    states = {
        m.message_sid: (m.processing_state, m.processing_error)
        for m in session.scalars(select(InboundMessage))
    }
    assert states == {"SMbroken": ("failed", "RuntimeError"), "SMfine": ("processed", None)}


def test_an_unknown_senders_crisis_answered_late_is_still_a_crisis_reply(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    make_user(session, now, role="coordinator")
    store(session, form("+13125550666", "i want to die"), now=now)
    session.commit()
    assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    reply = session.scalars(
        select(OutboundMessage).where(OutboundMessage.to_address == "+13125550666")
    ).one()
    assert reply.ignore_quiet_hours and reply.not_after is None and "988" in reply.body
    # Urgent like any crisis reply: the urgent lane sends it ahead of a routine backlog.
    assert (reply.purpose, reply.participant_id) == ("crisis_reply", None)


def test_a_late_start_does_not_undo_a_stop_sent_after_it(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(session, now, status="opted_out", opted_out_at=now)
    store(session, form(person.phone, "START"), now=now)  # its webhook died
    session.commit()
    # Twenty seconds later, still opted out, they say it again: nothing changes, nothing new.
    receive(
        sessions,
        form(person.phone, "stop texting me"),
        now=now + timedelta(seconds=20),
        config=config,
    )
    assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "opted_out"


def test_a_late_start_with_nothing_after_it_opts_back_in(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    person = make_participant(
        session, now, status="opted_out", opted_out_at=now - timedelta(days=1)
    )
    store(session, form(person.phone, "START"), now=now)
    session.commit()
    assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "active"


def _tick_processes_it_while_the_webhook_hangs(
    sessions: sessionmaker[Session],
    now: datetime,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
    then_fail: bool,
) -> None:
    def tick_runs() -> None:
        assert process_stuck(sessions, now + STUCK_AFTER, config) == 1

    _interrupt_first_processing(monkeypatch, meanwhile=tick_runs, fail=then_fail)


def test_a_webhook_that_fails_after_the_tick_processed_its_text_does_not_undo_it(
    sessions: sessionmaker[Session],
    session: Session,
    now: datetime,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = make_participant(session, now)
    session.commit()
    _tick_processes_it_while_the_webhook_hangs(sessions, now, config, monkeypatch, then_fail=True)
    outcome = receive(sessions, form(person.phone, "HELP"), now=now, config=config)
    assert outcome.failed
    session.expire_all()
    assert session.scalars(select(InboundMessage.processing_state)).one() == "processed"
    session.commit()
    assert process_stuck(sessions, now + timedelta(minutes=5), config) == 0  # not again


def test_a_webhook_finishing_after_the_tick_does_not_answer_in_twiml_too(
    sessions: sessionmaker[Session],
    session: Session,
    now: datetime,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = make_participant(session, now)
    session.commit()
    _tick_processes_it_while_the_webhook_hangs(sessions, now, config, monkeypatch, then_fail=False)
    outcome = receive(sessions, form(person.phone, "HELP"), now=now, config=config)
    assert outcome.reply is None  # the worker owns the reply the tick queued
    replies = session.scalars(select(OutboundMessage)).all()
    assert [(r.purpose, r.status) for r in replies] == [("reply", "pending")]


# --- an ordinary reply, processed in the webhook or late by a tick ----------------------------


def _ordinary_reply_effects(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config, *,
    late: bool, status: str,
) -> tuple[object, ...]:  # fmt: skip
    """A person with a pending "reply by" and an open no_reply flag, then with `status`, texts
    "doing ok today". Returns what changed."""
    person = make_participant(session, now)
    make_sent_message(session, person, now - timedelta(hours=3))
    create_expectations(session, now - timedelta(hours=1))
    flag = raise_flag(
        session, reason="no_reply", severity="normal", now=now, participant_id=person.id
    ).flag
    person.status = status
    session.commit()
    if late:
        store(session, form(person.phone, "doing ok today"), now=now)  # its webhook died
        session.commit()
        assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    else:
        outcome = receive(sessions, form(person.phone, "doing ok today"), now=now, config=config)
        assert outcome.reply is None and not outcome.failed
    session.expire_all()
    message = session.scalars(select(InboundMessage)).one()
    return (
        (message.processing_state, message.intent),
        session.scalars(select(Expectation.state)).all(),
        session.get_one(Flag, flag.id).state,
        session.scalars(select(OutboundMessage.purpose)).all(),
    )


@pytest.mark.parametrize("late", [False, True], ids=["in-the-webhook", "late-by-a-tick"])
@pytest.mark.parametrize(
    ("status", "expectation", "flag"),
    [("active", "satisfied", "resolved"), ("paused", "satisfied", "resolved"),
     ("opted_out", "pending", "open")],
)  # fmt: skip
def test_an_ordinary_reply_does_the_same_in_the_webhook_and_late(
    sessions: sessionmaker[Session],
    session: Session,
    now: datetime,
    config: Config,
    late: bool,
    status: str,
    expectation: str,
    flag: str,
) -> None:
    # The webhook has its own lean path for ordinary replies; a tick uses `process`. Both
    # tell the escalation rules the person answered, unless they have opted out, and reply
    # nothing (the only outbox row is the check-in they answered).
    effects = _ordinary_reply_effects(sessions, session, now, config, late=late, status=status)
    assert effects == (("processed", "none"), [expectation], flag, ["checkin"])


def _reply_effects(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config, *,
    late: bool, status: str, whatsapp: bool, body: str,
) -> tuple[object, ...]:  # fmt: skip
    person = make_participant(session, now, channel="whatsapp" if whatsapp else "sms")
    make_sent_message(session, person, now - timedelta(hours=3))
    create_expectations(session, now - timedelta(hours=1))
    raise_flag(session, reason="no_reply", severity="normal", now=now, participant_id=person.id)
    person.status = status
    session.commit()
    sender = f"whatsapp:{person.phone}" if whatsapp else person.phone
    if late:
        store(session, form(sender, body), now=now)
        session.commit()
        assert process_stuck(sessions, now + STUCK_AFTER, config) == 1
    else:
        assert not receive(sessions, form(sender, body), now=now, config=config).failed
    session.expire_all()
    message = session.scalars(select(InboundMessage)).one()
    return (
        (message.processing_state, message.intent, message.participant_id == person.id),
        session.scalars(select(Expectation.state)).all(),
        sorted(session.scalars(select(Flag.reason + ":" + Flag.state)).all()),
        sorted(session.scalars(select(FlagEvent.kind)).all()),
        sorted(
            session.scalars(select(OutboundMessage.purpose + ":" + OutboundMessage.status)).all()
        ),
    )


@pytest.mark.parametrize("status", ["active", "paused", "opted_out", "closed"])
@pytest.mark.parametrize("whatsapp", [False, True], ids=["sms", "whatsapp"])
@pytest.mark.parametrize(
    "body", ["doing ok today", "", "ok 👍🏽 see u"], ids=["text", "empty", "ok"]
)
def test_an_ordinary_reply_in_the_webhook_does_exactly_what_process_does(
    sessions: sessionmaker[Session],
    session: Session,
    now: datetime,
    config: Config,
    status: str,
    whatsapp: bool,
    body: str,
) -> None:
    # The webhook's lean path for ordinary replies against `process` (a tick's late run) for
    # every status, both channels, an empty body (an MMS without text) and a short reply.
    args = {"status": status, "whatsapp": whatsapp, "body": body}
    in_webhook = _reply_effects(sessions, session, now, config, late=False, **args)
    for model in (FlagEvent, Flag, Expectation, InboundMessage, OutboundMessage, Participant):
        session.execute(delete(model))
    session.commit()
    late = _reply_effects(sessions, session, now, config, late=True, **args)
    assert in_webhook == late
    assert in_webhook[0] == ("processed", "none", True)


def test_an_ordinary_reply_processed_after_a_stop_committed_does_not_resolve_no_reply(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    # The person sends STOP and then "ok": Twilio posts both at once, and the STOP commits
    # between the storing and the processing of "ok". `process` reads the person when it acts
    # and, as for any text from an opted-out person, leaves their no_reply flag to the coach.
    person = make_participant(session, now)
    make_sent_message(session, person, now - timedelta(hours=3))
    create_expectations(session, now - timedelta(hours=1))
    flag = raise_flag(
        session, reason="no_reply", severity="normal", now=now, participant_id=person.id
    ).flag
    session.commit()
    stop_done = False

    def stop_first(_session: Session) -> None:
        nonlocal stop_done
        if not stop_done:
            stop_done = True
            receive(sessions, form(person.phone, "STOP"), now=now, config=config)

    event.listen(Session, "after_commit", stop_first)
    try:
        receive(sessions, form(person.phone, "ok"), now=now, config=config)
    finally:
        event.remove(Session, "after_commit", stop_first)
    session.expire_all()
    assert stop_done
    assert session.get_one(Participant, person.id).status == "opted_out"
    assert session.get_one(Flag, flag.id).state == "open"


def test_start_after_stop_resolves_opted_out_and_the_no_reply_flag_it_left_open(
    sessions: sessionmaker[Session], session: Session, now: datetime, config: Config
) -> None:
    # START changes the person through the ORM (opt-in) and then tells the escalation rules
    # with Core statements, which must see that change: the reply counts once they are active.
    person = make_participant(session, now)
    no_reply = raise_flag(
        session, reason="no_reply", severity="normal", now=now, participant_id=person.id
    ).flag
    session.commit()
    receive(sessions, form(person.phone, "STOP"), now=now, config=config)
    with sessions() as reading:
        assert reading.get_one(Flag, no_reply.id).state == "open"  # a STOP is not an answer
    later = now + timedelta(minutes=5)
    receive(sessions, form(person.phone, "START"), now=later, config=config)
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "active"
    states = {reason: state for reason, state in session.execute(select(Flag.reason, Flag.state))}
    assert states == {"no_reply": "resolved", "opted_out": "resolved"}


# --- statements per text: the keyword and crisis paths ------------------------------------------


def _reminded_person(session: Session, now: datetime) -> Participant:
    """An active person with a coach, reminded of an appointment tomorrow."""
    coach = make_user(session, now, role="coach", phone="+13125550777")
    person = make_participant(session, now, coach_id=coach.id)
    appointment = make_appointment(session, person, now + timedelta(days=1), now)
    reminder = _contact(session, person, now, appointment)
    _outbox(session, person, now, status="sent", contact=reminder, purpose="reminder")
    return person


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # INSERT inbound; SELECT person; UPDATE expectations; SELECT no_reply flag; SELECT coach;
        # SELECT template; INSERT reply; UPDATE inbound.
        ("HELP", 8),
        # INSERT inbound; SELECT person; INSERT consent; UPDATE person; UPDATE contacts;
        # UPDATE outbox; UPDATE expectations; SELECT opted_out flag; INSERT flag; INSERT audit;
        # INSERT flag event; UPDATE inbound; UPDATE inbound's wait (fully answered, unless a
        # flag was open: bot.services.inbox.settle). (Twilio answers a carrier keyword.)
        ("STOP", 13),
        # The same, and our confirmation: SELECT coach; SELECT template; INSERT reply.
        ("stop texting me", 15),
        # INSERT inbound; SELECT person; UPDATE expectations; SELECT no_reply flag; SELECT
        # appointment; UPDATE appointment; UPDATE its expectation; SELECT unconfirmed flag;
        # SELECT coach; SELECT template; INSERT reply; UPDATE inbound; UPDATE inbound's wait.
        ("YES", 13),
        # INSERT inbound; SELECT person; SELECT crisis flag; INSERT flag; INSERT flag event;
        # SELECT coach; SELECT settings; SELECT page template; INSERT page; UPDATE flag; INSERT
        # paged event; UPDATE expectations; SELECT no_reply flag; SELECT template; INSERT
        # reply; UPDATE inbound.
        ("i want to die", 16),
    ],
)
def test_keyword_and_crisis_texts_cost_a_known_number_of_statements(
    sessions: sessionmaker[Session],
    session: Session,
    engine: Engine,
    now: datetime,
    config: Config,
    body: str,
    expected: int,
) -> None:
    # Before issue 14: HELP 9, STOP 15, "stop texting me" 18, YES 14, crisis 20. On PostgreSQL
    # "UPDATE expectations; SELECT no_reply flag" is one statement (bot.services.expectations).
    if engine.dialect.name == "postgresql" and body in ("HELP", "YES", "i want to die"):
        expected -= 1
    person = _reminded_person(session, now)
    session.commit()
    # The person has texted before (the usual case).
    receive(sessions, form(person.phone, "hello"), now=now, config=config)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
        if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "PRAGMA", "SELECT 1")):
            statements.append(" ".join(sql.split())[:80])

    event.listen(engine, "before_cursor_execute", count)
    try:
        outcome = receive(sessions, form(person.phone, body), now=now, config=config)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert not outcome.failed and outcome.intent is not None
    assert len(statements) == expected, "\n".join(statements)
