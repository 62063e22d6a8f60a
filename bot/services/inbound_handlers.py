"""What a classified inbound text does: the crisis path, keywords from participants (STOP,
START, HELP, YES/NO) and texts from numbers nobody enrolled. Each handler acts and returns the
reply to give (or none); bot.services.inbound.process picks the handler and records the reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, exists, or_, select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.log import log_event
from bot.models import (
    Appointment,
    ConsentEvent,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
    User,
)
from bot.services import consent, expectations, numbers, self_service
from bot.services.flags import raise_flag
from bot.services.inbound_store import Incoming
from bot.services.ladder import start_ladder
from bot.services.outbox import enqueue
from bot.services.templates import participant_context, render_message
from messages.defaults import crisis_key, default_templates
from messages.keywords import Intent
from messages.render import TemplateError, allowed_placeholders_for, render_template

log = logging.getLogger(__name__)

# Outbox statuses of a reminder that never left: a reply cannot be an answer to it.
_NOT_SENT = ("pending", "cancelled")
# An unknown number that keeps texting gets the polite answer at most this often.
UNKNOWN_SENDER_REPLY_EVERY = timedelta(hours=24)
# A reply that could not go back in TwiML is sent by the worker, within quiet hours, and not
# at all once it is this old ("thanks for confirming" the next afternoon would confuse).
LATE_REPLY_VALID_FOR = timedelta(hours=12)


@dataclass
class Reply:
    body: str | None = None
    purpose: str = "reply"
    # A YES or NO that answered a reminded appointment (the inbox counts it fully answered).
    answered_appointment: bool = False


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


def record_reply(
    session: Session,
    message: Incoming,
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
    one (see bot.services.inbound_retry) is left pending for the worker, which applies the
    usual checks: quiet hours except for a crisis reply, and nothing to a number that has opted
    out (so a text that says STOP gets no late confirmation, and a crisis text that also says
    STOP no late 988 text: its flag and page stand, and a person follows up). Returns False
    when a reply under that key was already recorded."""
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


# --- appointments -------------------------------------------------------------------------------

_appointments = cast(Table, Appointment.__table__)
_contacts = cast(Table, PlannedContact.__table__)
_outbound = cast(Table, OutboundMessage.__table__)
# Built once: the nearest upcoming appointment this person was reminded of.
_REMINDED_APPOINTMENT = (
    select(Appointment)
    .where(
        Appointment.participant_id == bindparam("person_id"),
        Appointment.starts_at > bindparam("now"),
        Appointment.status != "cancelled",
        exists()
        .where(
            _contacts.c.appointment_id == Appointment.id,
            _outbound.c.planned_contact_id == _contacts.c.id,
            _outbound.c.purpose == "reminder",
            _outbound.c.status.not_in(_NOT_SENT),
        )
        .correlate(Appointment),
    )
    .order_by(Appointment.starts_at, Appointment.id)
    .limit(1)
)


def reminded_appointment(
    session: Session, participant: Participant, now: datetime
) -> Appointment | None:
    """The nearest upcoming appointment this person has been reminded of: a YES or NO is read
    as the answer to that reminder."""
    return session.scalars(_REMINDED_APPOINTMENT, {"person_id": participant.id, "now": now}).first()


def _answer_appointment(
    session: Session,
    participant: Participant,
    appointment: Appointment,
    *,
    confirmed: bool,
    now: datetime,
    message: Incoming,
) -> None:
    appointment.status = "confirmed" if confirmed else "declined"
    appointment.responded_at = now
    appointment.updated_at = now
    if confirmed:
        # Satisfies its "confirm by"; an `unconfirmed_appointment` flag raised for it is
        # resolved automatically.
        expectations.on_appointment_confirmed(session, appointment, now)
        return
    # A "no" is an answer too: nothing more to wait for; a coach reschedules.
    expectations.on_appointment_answered(session, appointment, now)
    raise_flag(
        session,
        reason="appointment_declined",
        now=now,
        participant_id=participant.id,
        detail={"appointment_id": appointment.id, "inbound_message_id": message.id},
    )


def notify_reply(session: Session, participant_id: int, now: datetime) -> None:
    """Let the escalation rules know the person answered (satisfies pending expectations and
    resolves `no_reply`)."""
    expectations.on_participant_reply(session, participant_id, now)


# --- the handlers -------------------------------------------------------------------------------


def crisis(
    session: Session,
    message: Incoming,
    participant: Participant | None,
    *,
    categories: frozenset[str],
    kind: str | None = None,
    stop: bool,
    now: datetime,
    config: Config,
) -> Reply:
    """Crisis words: an urgent flag, the ladder's first page at once, and the 988 reply (to an
    enrolled person who has not opted out; the HELP text to a number nobody enrolled)."""
    detail = {"categories": sorted(categories), "inbound_message_id": message.id}
    if participant is None:
        outcome = raise_flag(
            session, reason="crisis", now=now, sender_address=message.from_address, detail=detail
        )
    else:
        outcome = raise_flag(
            session, reason="crisis", now=now, participant_id=participant.id, detail=detail
        )
    flag = outcome.flag
    # The coach is read once, for the page and the reply (the session keeps what is referenced).
    coach = (
        session.get(User, participant.coach_id)
        if participant is not None and participant.coach_id
        else None
    )
    if outcome.created or (flag.state == "open" and flag.ladder_step == 0):
        start_ladder(session, flag, now, config)
    if participant is None:
        # Not enrolled: no name or coach to speak of; the HELP text names the program's line
        # and 988, and a coordinator is paged. A crisis reply all the same: when it goes
        # through the outbox (a late retry) it takes the urgent lane.
        return Reply(_render(session, "help", "en", _anonymous_context(config)), "crisis_reply")
    was_opted_out = participant.status == "opted_out"
    if stop:
        consent.opt_out(
            session, participant, now=now, method=f"{message.channel}_keyword", wording=message.body
        )
    notify_reply(session, participant.id, now)
    if was_opted_out:
        # The law: no texts to a number that sent STOP and not START. The coach is paged.
        return Reply(None)
    context = participant_context(session, participant, config)
    del coach
    # The reply that fits the kind of crisis (overdose: 911 first), in the person's language.
    return Reply(_render(session, crisis_key(kind), participant.language, context), "crisis_reply")


def unknown_sender(
    session: Session,
    message: Incoming,
    intent: Intent,
    *,
    carrier: bool,
    now: datetime,
    config: Config,
) -> Reply:
    if carrier:
        # STOP/START from a number we do not know: the carrier answers; nothing for a coach.
        return Reply(None)
    raise_flag(
        session,
        reason="unknown_sender",
        now=now,
        sender_address=message.from_address,
        detail={"inbound_message_id": message.id},
    )
    recently = session.scalar(
        _ANSWERED_RECENTLY,
        {"address": message.from_address, "since": now - UNKNOWN_SENDER_REPLY_EVERY},
    )
    if recently is not None:
        # One polite answer a day is enough; a coordinator sees every message on the flag.
        return Reply(None)
    # HELP is answered with the program's facts, 988 and how to stop, whoever asks.
    key = "help" if intent is Intent.HELP else "unknown_sender"
    return Reply(_render(session, key, "en", _anonymous_context(config)))


_inbound = cast(Table, InboundMessage.__table__)
_consent = cast(Table, ConsentEvent.__table__)
# Built once: whether the person texted again, or their consent changed, after a moment.
_SAID_MORE_SINCE = select(
    or_(
        exists().where(
            _inbound.c.participant_id == bindparam("person_id"),
            _inbound.c.received_at > bindparam("since"),
        ),
        exists().where(
            _consent.c.participant_id == bindparam("person_id"),
            _consent.c.at > bindparam("since"),
        ),
    )
)
# Built once: an answer to this unknown number in the last UNKNOWN_SENDER_REPLY_EVERY.
_ANSWERED_RECENTLY = (
    select(_outbound.c.id)
    .where(
        _outbound.c.to_address == bindparam("address"),
        _outbound.c.participant_id.is_(None),
        _outbound.c.user_id.is_(None),
        _outbound.c.created_at > bindparam("since"),
    )
    .limit(1)
)


def _said_more_since(session: Session, participant: Participant, message: Incoming) -> bool:
    """Whether the person texted again, or their consent changed, after `message` came in."""
    params = {"person_id": participant.id, "since": message.received_at}
    return bool(session.scalar(_SAID_MORE_SINCE, params))


def keyword(
    session: Session,
    message: Incoming,
    participant: Participant,
    intent: Intent,
    *,
    carrier: bool,
    now: datetime,
    config: Config,
    in_twiml: bool,
) -> Reply:
    """A keyword from an enrolled person: STOP, START, HELP, YES or NO."""
    method = f"{message.channel}_keyword"
    language = participant.language
    intent = self_service.as_start_if_opted_out(intent, participant)
    if intent is Intent.STOP:
        changed = consent.opt_out(
            session, participant, now=now, method=method, wording=message.body
        )
        if carrier or not changed:
            # Twilio confirms its own keywords; an opted-out number gets nothing more.
            return Reply(None)
        context = participant_context(session, participant, config)
        return Reply(_render(session, "opt_out_confirm", language, context))
    if intent is Intent.START:
        if not in_twiml and _said_more_since(session, participant, message):
            # A START processed late must not undo what the person said after it (a later
            # STOP, even one that changed nothing because they were still opted out).
            log_event(log, "inbound.late_start_ignored", sid=message.message_sid)
            return Reply(None)
        consent.opt_in(session, participant, now=now, method=method, wording=message.body)
        notify_reply(session, participant.id, now)
        if carrier:
            return Reply(None)
        context = participant_context(session, participant, config)
        return Reply(_render(session, "opt_in_confirm", language, context))
    opted_out = participant.status == "opted_out"
    if not opted_out:
        notify_reply(session, participant.id, now)
    if intent is Intent.WRONG_NUMBER:
        # The number may belong to someone else now: automation holds, a coordinator checks.
        # No automatic answer: the text waits for a person (an open flag).
        numbers.on_wrong_number_reply(session, participant, message.id, now)
        return Reply(None)
    if intent is Intent.HELP:
        if opted_out:
            return Reply(None)
        context = participant_context(session, participant, config)
        return Reply(_render(session, "help", language, context))
    if intent in self_service.INTENTS:
        answer = self_service.answer(
            session, message, participant, intent, now=now, config=config, render=_render
        )
        return Reply(answer.body)
    if intent in (Intent.YES, Intent.NO):
        appointment = reminded_appointment(session, participant, now)
        if appointment is None:
            return Reply(None)
        confirmed = intent is Intent.YES
        _answer_appointment(
            session, participant, appointment, confirmed=confirmed, now=now, message=message
        )
        if opted_out:
            return Reply(None, answered_appointment=True)
        context = participant_context(session, participant, config, appointment)
        key = "confirm_ack" if confirmed else "decline_ack"
        return Reply(_render(session, key, language, context), answered_appointment=True)
    return Reply(None)
