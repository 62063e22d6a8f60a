"""Inbound texts: store first (exactly once per MessageSid), then understand and act.

The webhook (bot/web/webhook.py) hands a parsed form to `receive`, which

1. commits the raw message in its own transaction, deduplicated by MessageSid with
   INSERT ... ON CONFLICT DO NOTHING, so a Twilio retry, or two identical requests at the same
   moment, store one row and only the request that stored it goes on to act;
2. processes it in a second transaction: crisis words first, then keywords (STOP, START, HELP,
   YES/NO), then an ordinary reply; and
3. returns the text to answer with in the same HTTP response (TwiML), or None for `<Response/>`.

Every reply given in TwiML is also recorded as an outbox row with status `sent` (idempotency key
`reply:<MessageSid>`) so that the conversation view shows it; it is never sent again by the
worker. If processing fails, the message stays stored with processing_state `failed` for a
coach to read, and the caller still answers valid TwiML.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import is_postgresql, one_connection_session
from bot.log import log_event, mask_phone
from bot.models import (
    Appointment,
    ConsentEvent,
    Expectation,
    Flag,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
)
from bot.phones import PhoneError, normalize_phone, split_channel_address
from bot.services import audit, expectations
from bot.services.flags import raise_flag, resolve_flag
from bot.services.outbox import enqueue
from bot.services.paging import start_ladder
from bot.services.replan import request_replan
from bot.services.templates import participant_context, render_message
from messages.crisis import detect_crisis
from messages.defaults import default_templates
from messages.keywords import Intent, classify_keyword
from messages.render import TemplateError, allowed_placeholders_for, render_template

log = logging.getLogger(__name__)

# Outbox statuses of a reminder that never left: a reply cannot be an answer to it.
_NOT_SENT = ("pending", "cancelled")
# An unknown number that keeps texting gets the polite answer at most this often.
UNKNOWN_SENDER_REPLY_EVERY = timedelta(hours=24)
# A message still unprocessed this long after it came in was not finished by its webhook (the
# process died, or the database failed mid-way). Twilio gives up on a webhook after 15 s and
# gunicorn kills a request after 30 s (its default timeout), so by then no webhook is still
# working on it. The web server's request timeout must stay under this, and the web and worker
# clocks must agree to well within it.
STUCK_AFTER = timedelta(minutes=2)
# At most this many per tick, oldest first, so a failure that repeats cannot hold up sending.
STUCK_PER_TICK = 50
# Such a message is retried by every tick for this long, then left for a coach to read.
RETRY_STUCK_FOR = timedelta(hours=1)
# A reply that could not go back in TwiML is sent by the worker, within quiet hours, and not
# at all once it is this old ("thanks for confirming" the next afternoon would confuse).
LATE_REPLY_VALID_FOR = timedelta(hours=12)


@dataclass(frozen=True)
class InboundForm:
    """What the webhook parsed out of Twilio's form (already checked and cleaned)."""

    message_sid: str
    from_address: str
    to_address: str
    body: str
    num_media: int
    # The whole form, a list of values per key, as Twilio posted it (media URLs included).
    raw_form: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundOutcome:
    # The text to answer with in TwiML, or None for an empty <Response/>.
    reply: str | None
    message_id: int | None = None
    duplicate: bool = False
    failed: bool = False
    intent: str | None = None


# --- matching -----------------------------------------------------------------------------------


def _sender_phone(from_address: str) -> str | None:
    """The E.164 phone behind `+1...` or `whatsapp:+1...`, or None if it is not a phone."""
    _channel, phone = split_channel_address(from_address)
    if phone.startswith("+"):
        return phone
    try:
        return normalize_phone(phone)
    except PhoneError:
        return None


# --- storing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredText:
    """What storing a text returns: enough to decide how to process it without reading it back."""

    id: int
    participant_id: int | None
    channel: str


# Core, not ORM, and built once: this runs for every text, and building an INSERT from the ORM
# entity and loading the row back as an object cost more than the INSERT itself.
_inbound = cast(Table, InboundMessage.__table__)
_participants = cast(Table, Participant.__table__)
_STORE_VALUES = {
    name: bindparam(name, type_=_inbound.c[name].type)
    for name in (
        "message_sid",
        "from_address",
        "to_address",
        "channel",
        "body",
        "num_media",
        "raw_form",
        "received_at",
    )
}
# The sender is matched inside the INSERT. Not their status: it may change before the text is
# processed (a STOP sent just before), so processing reads it when it acts.
_MATCHED_PARTICIPANT = (
    select(_participants.c.id).where(_participants.c.phone == bindparam("phone")).scalar_subquery()
)


def _store_statement(insert: Any) -> Any:
    return (
        insert(_inbound)
        .values(**_STORE_VALUES, participant_id=_MATCHED_PARTICIPANT, processing_state="received")
        .on_conflict_do_nothing(index_elements=["message_sid"])
        .returning(_inbound.c.id, _inbound.c.participant_id, _inbound.c.channel)
    )


_STORE = {"postgresql": _store_statement(pg_insert), "sqlite": _store_statement(sqlite_insert)}
_MARK_PROCESSED = (
    update(_inbound)
    .where(_inbound.c.id == bindparam("message_id"))
    .values(
        intent=bindparam("understood"), processing_state="processed", processed_at=bindparam("at")
    )
)


def store(session: Session, form: InboundForm, *, now: datetime) -> StoredText | None:
    """Insert the raw message unless its MessageSid is already stored. Returns what was stored,
    or None for a duplicate. The database decides (unique index + ON CONFLICT DO NOTHING), so
    two requests at the same moment cannot both win.

    One statement does it all (the sender is matched inside the INSERT and the row comes back
    through RETURNING): this runs for every text, and every round trip here is paid by all of
    them."""
    channel, _phone = split_channel_address(form.from_address)
    params = {
        "message_sid": form.message_sid,
        "from_address": form.from_address,
        "to_address": form.to_address,
        "channel": channel,
        "body": form.body,
        "num_media": form.num_media,
        "raw_form": form.raw_form,
        "received_at": now,
        "phone": _sender_phone(form.from_address),
    }
    statement = _STORE["postgresql" if is_postgresql(session) else "sqlite"]
    row = session.execute(statement, params).first()
    if row is None:
        return None
    return StoredText(id=row[0], participant_id=row[1], channel=row[2])


# --- rendering ----------------------------------------------------------------------------------


def _render(session: Session, key: str, language: str, context: dict[str, str]) -> str:
    """The current template, or the shipped default if the stored one cannot be rendered: a
    crisis or opt-out reply must go out even if a coordinator's edit is broken."""
    try:
        return render_message(session, key, language, context)
    except TemplateError:
        log_event(log, "template.fallback_to_default", level=logging.ERROR, key=key, lang=language)
        defaults = default_templates()
        body = defaults.get((key, language), defaults[(key, "en")])
        return render_template(body, context, allowed=allowed_placeholders_for(key))


def _anonymous_context(config: Config) -> dict[str, str]:
    """For a number that is not enrolled: only the program's facts."""
    return {
        "first_name": "",
        "coach_first_name": "",
        "program_name": config.program_name,
        "program_phone": config.program_phone,
    }


def _record_reply(
    session: Session,
    message: InboundMessage,
    body: str,
    *,
    purpose: str,
    participant_id: int | None,
    now: datetime,
    in_twiml: bool = True,
    crisis: bool = False,
) -> bool:
    """Record the reply in the outbox under the key `reply:<MessageSid>`, so the conversation
    shows it and it can never go out twice. A TwiML reply is recorded as already sent; a late
    one (see process_stuck) is left pending for the worker, which applies the usual checks:
    quiet hours except for a crisis reply, and nothing to a number that has opted out (so a
    text that says STOP gets no late confirmation, and a crisis text that also says STOP no late
    988 text: its flag and page stand, and a person follows up). Returns False when a reply
    under that key was already recorded."""
    enqueued = enqueue(
        session,
        idempotency_key=f"reply:{message.message_sid}",
        purpose=purpose,
        channel=message.channel,
        to_address=message.from_address,
        body=body,
        now=now,
        not_after=None if in_twiml or crisis else now + LATE_REPLY_VALID_FOR,
        participant_id=participant_id,
        ignore_quiet_hours=in_twiml or crisis,
        already_sent_at=now if in_twiml else None,
    )
    return enqueued.created


# --- consent ------------------------------------------------------------------------------------


def opt_out(
    session: Session,
    participant: Participant,
    *,
    now: datetime,
    method: str,
    wording: str | None,
    actor: str = "participant",
) -> bool:
    """Record an opt-out and stop everything that would text this person: planned contacts and
    pending outbox rows are cancelled, pending expectations too, and an `opted_out` info flag
    tells the coach. Returns False when the person had already opted out."""
    if participant.status == "opted_out":
        return False
    previous = participant.status
    participant.status = "opted_out"
    participant.opted_out_at = now
    participant.updated_at = now
    session.add(
        ConsentEvent(
            participant_id=participant.id, kind="opt_out", at=now, method=method, wording=wording
        )
    )
    # Rows a scheduler tick holds locked right now are skipped, not waited for: this
    # transaction must commit the opt-out at once, because the sender's last look before each
    # request (scheduler/send.py, _may_leave) reads the person's status, and a STOP waiting on
    # the tick's locks would commit only after that look. What is skipped here is cancelled by
    # the claim or the last look, which both read the status again.
    unlocked_contacts = (
        select(PlannedContact.id)
        .where(
            PlannedContact.participant_id == participant.id,
            PlannedContact.state.in_(("planned", "queued")),
        )
        .with_for_update(skip_locked=True)
    )
    contacts = session.execute(
        update(PlannedContact)
        .where(PlannedContact.id.in_(unlocked_contacts.scalar_subquery()))
        .values(state="cancelled", state_reason="opted_out", decided_at=now)
        .execution_options(synchronize_session=False)
    )
    unlocked_outbox = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.participant_id == participant.id,
            OutboundMessage.status == "pending",
        )
        .with_for_update(skip_locked=True)
    )
    outbox = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(unlocked_outbox.scalar_subquery()))
        .values(status="cancelled", error_message="opted out", status_updated_at=now)
        .execution_options(synchronize_session=False)
    )
    expectations = session.execute(
        update(Expectation)
        .where(Expectation.participant_id == participant.id, Expectation.state == "pending")
        .values(state="cancelled", resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    raise_flag(
        session,
        reason="opted_out",
        severity="info",
        now=now,
        participant_id=participant.id,
        detail={"method": method},
    )
    audit.record(
        session,
        now=now,
        action="participant.opted_out",
        actor=actor,
        participant_id=participant.id,
        detail={
            "method": method,
            "previous_status": previous,
            "contacts_cancelled": _rowcount(contacts),
            "outbox_cancelled": _rowcount(outbox),
            "expectations_cancelled": _rowcount(expectations),
        },
    )
    log_event(
        log,
        "participant.opted_out",
        participant_id=participant.id,
        method=method,
        phone=mask_phone(participant.phone),
    )
    return True


def _rowcount(result: Any) -> int:
    count: int = getattr(result, "rowcount", 0) or 0
    return count


def opt_in(
    session: Session, participant: Participant, *, now: datetime, method: str, wording: str | None
) -> bool:
    """START after STOP: active again, a new plan version (so the planner plans afresh rather
    than reviving cancelled contacts), and the `opted_out` flag resolved. False when the person
    was not opted out (START from someone active or paused changes nothing)."""
    if participant.status != "opted_out":
        return False
    participant.status = "active"
    participant.opted_out_at = None
    # Re-planning: planned from this moment, so a check-in due before the next tick still goes.
    request_replan(session, participant, now, restart=True)
    session.add(
        ConsentEvent(
            participant_id=participant.id, kind="opt_in", at=now, method=method, wording=wording
        )
    )
    open_flag = session.scalars(
        select(Flag).where(
            Flag.participant_id == participant.id,
            Flag.reason == "opted_out",
            Flag.state != "resolved",
        )
    ).first()
    if open_flag is not None:
        resolve_flag(
            session,
            open_flag,
            outcome="no_action_needed",
            note="Opted back in by text.",
            now=now,
            user_id=None,
            automatic=True,
        )
    audit.record(
        session,
        now=now,
        action="participant.opted_in",
        actor="participant",
        participant_id=participant.id,
        detail={"method": method},
    )
    log_event(log, "participant.opted_in", participant_id=participant.id, method=method)
    return True


# --- appointments -------------------------------------------------------------------------------


def reminded_appointment(
    session: Session, participant: Participant, now: datetime
) -> Appointment | None:
    """The nearest upcoming appointment this person has been reminded of: a YES or NO is read
    as the answer to that reminder."""
    reminded = (
        exists()
        .where(
            PlannedContact.appointment_id == Appointment.id,
            OutboundMessage.planned_contact_id == PlannedContact.id,
            OutboundMessage.purpose == "reminder",
            OutboundMessage.status.not_in(_NOT_SENT),
        )
        .correlate(Appointment)
    )
    return session.scalars(
        select(Appointment)
        .where(
            Appointment.participant_id == participant.id,
            Appointment.starts_at > now,
            Appointment.status != "cancelled",
            reminded,
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(1)
    ).first()


def _answer_appointment(
    session: Session,
    participant: Participant,
    appointment: Appointment,
    *,
    confirmed: bool,
    now: datetime,
    message: InboundMessage,
) -> None:
    appointment.status = "confirmed" if confirmed else "declined"
    appointment.responded_at = now
    appointment.updated_at = now
    # Any answer, yes or no, is what a "confirm by" expectation waits for.
    session.execute(
        update(Expectation)
        .where(
            Expectation.appointment_id == appointment.id,
            Expectation.kind == "confirm",
            Expectation.state == "pending",
        )
        .values(state="satisfied", resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    if confirmed:
        # An `unconfirmed_appointment` flag raised for it is resolved automatically.
        expectations.on_appointment_confirmed(session, appointment, now)
    if not confirmed:
        raise_flag(
            session,
            reason="appointment_declined",
            severity="normal",
            now=now,
            participant_id=participant.id,
            detail={"appointment_id": appointment.id, "inbound_message_id": message.id},
        )


def _notify_reply(session: Session, participant: Participant, now: datetime) -> None:
    """Let the escalation rules know the person answered (satisfies pending expectations and
    resolves `no_reply`)."""
    expectations.on_participant_reply(session, participant.id, now)


# --- processing ---------------------------------------------------------------------------------


@dataclass
class _Reply:
    body: str | None = None
    purpose: str = "reply"


def _crisis(
    session: Session,
    message: InboundMessage,
    participant: Participant | None,
    *,
    categories: frozenset[str],
    stop: bool,
    now: datetime,
    config: Config,
) -> _Reply:
    detail = {"categories": sorted(categories), "inbound_message_id": message.id}
    if participant is None:
        outcome = raise_flag(
            session,
            reason="crisis",
            severity="urgent",
            now=now,
            sender_address=message.from_address,
            detail=detail,
        )
    else:
        outcome = raise_flag(
            session,
            reason="crisis",
            severity="urgent",
            now=now,
            participant_id=participant.id,
            detail=detail,
        )
    flag = outcome.flag
    if outcome.created or (flag.state == "open" and flag.ladder_step == 0):
        start_ladder(session, flag, now, config)
    if participant is None:
        # Not enrolled: no name or coach to speak of; the HELP text names the program's line
        # and 988, and a coordinator is paged.
        return _Reply(_render(session, "help", "en", _anonymous_context(config)))
    was_opted_out = participant.status == "opted_out"
    if stop:
        opt_out(
            session, participant, now=now, method=f"{message.channel}_keyword", wording=message.body
        )
    _notify_reply(session, participant, now)
    if was_opted_out:
        # The law: no texts to a number that sent STOP and not START. The coach is paged.
        return _Reply(None)
    context = participant_context(session, participant, config)
    return _Reply(_render(session, "crisis", participant.language, context), "crisis_reply")


def _unknown_sender(
    session: Session,
    message: InboundMessage,
    intent: Intent,
    *,
    carrier: bool,
    now: datetime,
    config: Config,
) -> _Reply:
    if carrier:
        # STOP/START from a number we do not know: the carrier answers; nothing for a coach.
        return _Reply(None)
    raise_flag(
        session,
        reason="unknown_sender",
        severity="normal",
        now=now,
        sender_address=message.from_address,
        detail={"inbound_message_id": message.id},
    )
    recently = session.scalars(
        select(OutboundMessage.id).where(
            OutboundMessage.to_address == message.from_address,
            OutboundMessage.participant_id.is_(None),
            OutboundMessage.user_id.is_(None),
            OutboundMessage.created_at > now - UNKNOWN_SENDER_REPLY_EVERY,
        )
    ).first()
    if recently is not None:
        # One polite answer a day is enough; a coordinator sees every message on the flag.
        return _Reply(None)
    # HELP is answered with the program's facts, 988 and how to stop, whoever asks.
    key = "help" if intent is Intent.HELP else "unknown_sender"
    return _Reply(_render(session, key, "en", _anonymous_context(config)))


def _said_more_since(session: Session, participant: Participant, message: InboundMessage) -> bool:
    """Whether the person texted again, or their consent changed, after `message` came in."""
    later_text = exists().where(
        InboundMessage.participant_id == participant.id,
        InboundMessage.received_at > message.received_at,
    )
    later_consent = exists().where(
        ConsentEvent.participant_id == participant.id, ConsentEvent.at > message.received_at
    )
    return bool(session.scalar(select(or_(later_text, later_consent))))


def _participant_keyword(
    session: Session,
    message: InboundMessage,
    participant: Participant,
    intent: Intent,
    *,
    carrier: bool,
    now: datetime,
    config: Config,
    in_twiml: bool,
) -> _Reply:
    method = f"{message.channel}_keyword"
    language = participant.language
    if intent is Intent.STOP:
        changed = opt_out(session, participant, now=now, method=method, wording=message.body)
        if carrier or not changed:
            # Twilio confirms its own keywords; an opted-out number gets nothing more.
            return _Reply(None)
        context = participant_context(session, participant, config)
        return _Reply(_render(session, "opt_out_confirm", language, context))
    if intent is Intent.START:
        if not in_twiml and _said_more_since(session, participant, message):
            # A START processed late must not undo what the person said after it (a later
            # STOP, even one that changed nothing because they were still opted out).
            log_event(log, "inbound.late_start_ignored", sid=message.message_sid)
            return _Reply(None)
        opt_in(session, participant, now=now, method=method, wording=message.body)
        _notify_reply(session, participant, now)
        if carrier:
            return _Reply(None)
        context = participant_context(session, participant, config)
        return _Reply(_render(session, "opt_in_confirm", language, context))
    opted_out = participant.status == "opted_out"
    if not opted_out:
        _notify_reply(session, participant, now)
    if intent is Intent.HELP:
        if opted_out:
            return _Reply(None)
        context = participant_context(session, participant, config)
        return _Reply(_render(session, "help", language, context))
    if intent in (Intent.YES, Intent.NO):
        appointment = reminded_appointment(session, participant, now)
        if appointment is None:
            return _Reply(None)
        confirmed = intent is Intent.YES
        _answer_appointment(
            session, participant, appointment, confirmed=confirmed, now=now, message=message
        )
        if opted_out:
            return _Reply(None)
        context = participant_context(session, participant, config, appointment)
        key = "confirm_ack" if confirmed else "decline_ack"
        return _Reply(_render(session, key, language, context))
    return _Reply(None)


def process(
    session: Session,
    message: InboundMessage,
    *,
    now: datetime,
    config: Config,
    in_twiml: bool = True,
) -> str | None:
    """Understand one stored message and act on it; returns the reply text or None. The reply
    goes back in the webhook's TwiML, or, when `in_twiml` is False, through the outbox."""
    participant = (
        session.get(Participant, message.participant_id)
        if message.participant_id is not None
        else None
    )
    # Twilio's Advanced Opt-Out answers its keywords on SMS only; on WhatsApp we answer.
    keyword = classify_keyword(message.body)
    carrier = keyword.carrier_handled and message.channel == "sms"
    crisis = detect_crisis(message.body)
    if crisis.is_crisis:
        intent = "crisis"
        reply = _crisis(
            session,
            message,
            participant,
            categories=crisis.categories,
            stop=keyword.intent is Intent.STOP,
            now=now,
            config=config,
        )
    elif participant is None:
        intent = keyword.intent.value
        reply = _unknown_sender(
            session, message, keyword.intent, carrier=carrier, now=now, config=config
        )
    else:
        intent = keyword.intent.value
        reply = _participant_keyword(
            session,
            message,
            participant,
            keyword.intent,
            carrier=carrier,
            now=now,
            config=config,
            in_twiml=in_twiml,
        )
    if reply.body is not None:
        recorded = _record_reply(
            session,
            message,
            reply.body,
            purpose=reply.purpose if participant is not None else "reply",
            participant_id=participant.id if participant is not None else None,
            now=now,
            in_twiml=in_twiml,
            crisis=crisis.is_crisis,
        )
        if in_twiml and not recorded:
            # Already queued by a tick that processed this text late: the worker sends it.
            reply = _Reply(None)
    message.intent = intent
    message.processing_state = "processed"
    message.processed_at = now
    log_event(
        log,
        "inbound.processed",
        sid=message.message_sid,
        sender=mask_phone(message.from_address),
        participant_id=message.participant_id,
        intent=intent,
        crisis_rules=list(crisis.matched),
        replied=reply.body is not None,
    )
    return reply.body


def _stored_reply(session: Session, message_sid: str) -> str | None:
    """The TwiML reply recorded for a MessageSid (status `sent`, no SID of its own). A reply a
    tick queued for the worker is not one: answering with it too would send it twice."""
    return session.scalars(
        select(OutboundMessage.body).where(
            OutboundMessage.idempotency_key == f"reply:{message_sid}",
            OutboundMessage.status == "sent",
            OutboundMessage.provider_sid.is_(None),
        )
    ).first()


def _is_ordinary_reply(stored: StoredText, body: str) -> bool:
    """A text from a known participant that is neither a keyword nor a crisis: most texts.
    It gets no reply; it only tells the escalation rules that the person answered."""
    return (
        stored.participant_id is not None
        and classify_keyword(body).intent is Intent.NONE
        and not detect_crisis(body).is_crisis
    )


def _process_ordinary_reply(
    session: Session, stored: StoredText, form: InboundForm, now: datetime
) -> None:
    """What `process` does for an ordinary reply, without loading the message or the person as
    ORM objects (the webhook's hot path): the same expectations update, the same marking."""
    assert stored.participant_id is not None
    # As `process` does, nothing for a person who has opted out; their status is read by the
    # statements themselves, as it is now, not as it was when the text was stored.
    expectations.on_participant_reply(session, stored.participant_id, now, unless_opted_out=True)
    session.execute(
        _MARK_PROCESSED, {"message_id": stored.id, "understood": Intent.NONE.value, "at": now}
    )
    log_event(
        log,
        "inbound.processed",
        sid=form.message_sid,
        sender=mask_phone(form.from_address),
        participant_id=stored.participant_id,
        intent=Intent.NONE.value,
        crisis_rules=[],
        replied=False,
    )


def receive(
    sessions: sessionmaker[Session], form: InboundForm, *, now: datetime, config: Config
) -> InboundOutcome:
    """Store, then process; never raises for a processing failure (the message stays stored).

    A duplicate MessageSid changes nothing and answers with the reply recorded for the
    original, if any: Twilio only retries when it did not get our answer, so the person has
    not seen it yet.

    One session on one connection, two transactions: the first commits the raw message before
    anything acts on it; the second acts on it. An ordinary reply (most texts) is processed
    from what the INSERT returned; anything else loads the message and goes through `process`.
    """
    with one_connection_session(sessions) as session:
        stored = store(session, form, now=now)
        if stored is None:
            recorded = _stored_reply(session, form.message_sid)
            session.rollback()
            log_event(
                log, "inbound.duplicate", sid=form.message_sid, sender=mask_phone(form.from_address)
            )
            return InboundOutcome(reply=recorded, duplicate=True)
        # Anything but an ordinary reply is processed from the ORM object, read here, inside
        # the storing transaction, so that the processing transaction holds its locks (on
        # SQLite, the write lock from BEGIN) only while it processes.
        try:
            ordinary = _is_ordinary_reply(stored, form.body)
        except Exception:
            # Reading the text failed. It must still be stored (the commit below): `process`
            # meets the same failure in the processing transaction, and it is marked failed.
            ordinary = False
        message = None if ordinary else session.get_one(InboundMessage, stored.id)
        session.commit()  # stored for good before anything acts on it
        try:
            intent: str | None
            if message is None:
                _process_ordinary_reply(session, stored, form, now)
                reply, intent = None, Intent.NONE.value
            else:
                reply = process(session, message, now=now, config=config)
                intent = message.intent
            session.commit()
        except Exception as exc:
            session.rollback()
            _mark_failed(
                session, stored.id, exc, sid=form.message_sid, sender=form.from_address, now=now
            )
            return InboundOutcome(reply=None, message_id=stored.id, failed=True)
    return InboundOutcome(reply=reply, message_id=stored.id, intent=intent)


def _mark_failed(
    session: Session, message_id: int, exc: Exception, *, sid: str, sender: str, now: datetime
) -> None:
    """Keep the stored message visible to coaches as `failed`, with the error's class; the
    tick retries it for a while (process_stuck)."""
    # Only the exception's class: its text may quote SQL parameters, i.e. the body.
    log_event(
        log,
        "inbound.processing_failed",
        level=logging.ERROR,
        sid=sid,
        sender=mask_phone(sender),
        error=type(exc).__name__,
    )
    session.execute(
        update(InboundMessage)
        # Never over a tick's late processing: the text would be acted on twice.
        .where(InboundMessage.id == message_id, InboundMessage.processing_state != "processed")
        .values(
            processing_state="failed",
            processing_error=type(exc).__name__[:255],
            processed_at=now,
        )
    )
    session.commit()


# --- retrying what a webhook did not finish -----------------------------------------------------


def process_stuck(sessions: sessionmaker[Session], now: datetime, config: Config) -> int:
    """Process the messages their webhook stored but did not finish: still `received` a minute
    later (the web process died mid-way) or `failed` (the database failed mid-way). Without
    this a crisis text caught by such a failure would raise no flag and page nobody.

    Called by every scheduler tick, for messages up to RETRY_STUCK_FOR old; one transaction
    each, skipping a row another tick holds. The reply can no longer go back in TwiML, so it
    goes through the outbox (see _record_reply). Returns how many were processed."""
    with sessions() as session:
        stuck = session.scalars(
            select(InboundMessage.id)
            .where(
                InboundMessage.processing_state != "processed",
                InboundMessage.received_at <= now - STUCK_AFTER,
                InboundMessage.received_at > now - RETRY_STUCK_FOR,
            )
            .order_by(InboundMessage.received_at, InboundMessage.id)
            .limit(STUCK_PER_TICK)
        ).all()
    return sum(_process_stuck_one(sessions, message_id, now, config) for message_id in stuck)


def _process_stuck_one(
    sessions: sessionmaker[Session], message_id: int, now: datetime, config: Config
) -> bool:
    with one_connection_session(sessions) as session:
        message = session.scalars(
            select(InboundMessage)
            .where(InboundMessage.id == message_id, InboundMessage.processing_state != "processed")
            .with_for_update(skip_locked=True)
        ).first()
        if message is None:
            return False  # done meanwhile, or another tick has it
        sid, sender = message.message_sid, message.from_address
        try:
            process(session, message, now=now, config=config, in_twiml=False)
            session.commit()
        except Exception as exc:
            session.rollback()
            try:
                _mark_failed(session, message_id, exc, sid=sid, sender=sender, now=now)
            except SQLAlchemyError as again:
                # The database is still failing; the next tick tries again. Only the class:
                # the error's text (and its chain) may quote the body.
                log_event(
                    log,
                    "inbound.mark_failed_failed",
                    level=logging.ERROR,
                    sid=sid,
                    error=type(again).__name__,
                )
            return False
        log_event(log, "inbound.processed_late", sid=sid, sender=mask_phone(sender))
        return True
