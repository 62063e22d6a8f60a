"""Inbound texts: store first (exactly once per MessageSid), then understand and act.

The webhook (bot/web/webhook.py) hands a parsed form to `receive`, which

1. commits the raw message in its own transaction, deduplicated by MessageSid with
   INSERT ... ON CONFLICT DO NOTHING, so a Twilio retry, or two identical requests at the same
   moment, store one row and only the request that stored it goes on to act
   (bot.services.inbound_store);
2. processes it in a second transaction (`process`, the one path every text takes, from the
   webhook or from a tick's retry): the text is classified once (crisis words and keyword
   together), then dispatched: a crisis, a text from an unknown number, an ordinary reply
   (most texts: no reply, only "the person answered"), or a keyword (STOP, START, HELP,
   YES/NO; the handlers are in bot.services.inbound_handlers); and
3. returns the text to answer with in the same HTTP response (TwiML), or None for `<Response/>`.

Every reply given in TwiML is also recorded as an outbox row with status `sent` (idempotency key
`reply:<MessageSid>`) so that the conversation view shows it; it is never sent again by the
worker. If processing fails, the message stays stored with processing_state `failed` for a
coach to read (a tick retries it: bot.services.inbound_retry), and the caller still answers
valid TwiML.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import is_postgresql, one_connection_session, statements_commit
from bot.log import log_event, mask_phone
from bot.models import Participant
from bot.services import expectations, inbox
from bot.services import inbound_handlers as handlers
from bot.services.inbound_handlers import LATE_REPLY_VALID_FOR, reminded_appointment
from bot.services.inbound_store import (
    MARK_PROCESSED,
    InboundForm,
    Incoming,
    StoredText,
    mark_failed,
    store,
    stored_reply,
)
from messages.crisis import CrisisResult, detect_crisis
from messages.keywords import Intent, KeywordResult, classify_keyword

log = logging.getLogger(__name__)

__all__ = [
    "LATE_REPLY_VALID_FOR",
    "InboundForm",
    "InboundOutcome",
    "Incoming",
    "Processed",
    "StoredText",
    "Understood",
    "process",
    "receive",
    "reminded_appointment",
    "store",
    "understand",
]


@dataclass(frozen=True)
class InboundOutcome:
    # The text to answer with in TwiML, or None for an empty <Response/>.
    reply: str | None
    message_id: int | None = None
    duplicate: bool = False
    failed: bool = False
    intent: str | None = None


@dataclass(frozen=True)
class Understood:
    """A text classified once: its keyword (if any) and its crisis words (if any)."""

    keyword: KeywordResult
    crisis: CrisisResult

    @property
    def intent(self) -> str:
        return "crisis" if self.crisis.is_crisis else self.keyword.intent.value


def understand(body: str) -> Understood:
    return Understood(keyword=classify_keyword(body), crisis=detect_crisis(body))


@dataclass(frozen=True)
class Processed:
    reply: str | None
    intent: str


def _in_a_transaction() -> None:
    """`process`'s default `begin`: the caller's session is in an ordinary transaction."""


# An ordinary reply in one statement (PostgreSQL): its expectations satisfied and the text
# marked processed together, unless a `no_reply` flag is open (then nothing: `process` goes on
# in a transaction and resolves it). Built once.
_ORDINARY_IN_ONE = expectations.reply_unless_flagged(MARK_PROCESSED)


def _ordinary_in_one(
    session: Session, message: Incoming, understood: Understood, now: datetime
) -> bool:
    """Whether the ordinary reply `message` was processed by one statement (PostgreSQL only)."""
    if not is_postgresql(session):
        return False
    params = {
        "person_id": message.participant_id,
        "at": now,
        "message_id": message.id,
        "understood": understood.intent,
    }
    flag_id = session.execute(_ORDINARY_IN_ONE, params).one()[0]
    return flag_id is None


def process(
    session: Session,
    message: Incoming,
    *,
    now: datetime,
    config: Config,
    in_twiml: bool = True,
    begin: Callable[[], None] = _in_a_transaction,
) -> Processed:
    """Understand one stored message and act on it; returns the reply text (or None) and what
    the text was understood as. The reply goes back in the webhook's TwiML, or, when
    `in_twiml` is False (a tick's retry), through the outbox.

    `begin` is called before any work of more than one statement: the webhook's session
    commits each statement on its own until then (bot.db.statements_commit), so that an
    ordinary reply, one statement on PostgreSQL, is one round trip."""
    understood = understand(message.body)
    keyword, crisis = understood.keyword, understood.crisis
    # Twilio's Advanced Opt-Out answers its keywords on SMS only; on WhatsApp we answer.
    carrier = keyword.carrier_handled and message.channel == "sms"
    ordinary = (
        not crisis.is_crisis
        and message.participant_id is not None
        and keyword.intent is Intent.NONE
    )
    if ordinary and _ordinary_in_one(session, message, understood, now):
        # Done: "they answered" and the text marked processed, in one statement. It still
        # waits for a person (bot.services.inbox: nothing to settle for an ordinary reply).
        _log_processed(message, understood, replied=False)
        return Processed(None, understood.intent)
    begin()
    participant = None
    if crisis.is_crisis:
        participant = _participant(session, message)
        reply = handlers.crisis(
            session,
            message,
            participant,
            categories=crisis.categories,
            kind=crisis.kind,
            stop=keyword.intent is Intent.STOP,
            now=now,
            config=config,
        )
    elif ordinary and message.participant_id is not None:
        # An ordinary reply from a known person (most texts): no reply, only "they answered",
        # without loading the person. Nothing for someone who has opted out: their status is
        # read by the statements themselves, as it is now, not as it was when it was stored.
        # Here when it resolves a `no_reply` flag too, or on SQLite (else: _ordinary_in_one).
        expectations.on_participant_reply(
            session, message.participant_id, now, unless_opted_out=True
        )
        reply = handlers.Reply(None)
    elif (participant := _participant(session, message)) is None:
        reply = handlers.unknown_sender(
            session, message, keyword.intent, carrier=carrier, now=now, config=config
        )
    else:
        reply = handlers.keyword(
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
        recorded = handlers.record_reply(
            session,
            message,
            reply.body,
            purpose=reply.purpose,
            participant_id=participant.id if participant is not None else None,
            now=now,
            in_twiml=in_twiml,
            crisis=crisis.is_crisis,
        )
        if in_twiml and not recorded:
            # Already queued by a tick that processed this text late: the worker sends it.
            reply = handlers.Reply(None, answered_appointment=reply.answered_appointment)
    session.execute(
        MARK_PROCESSED, {"message_id": message.id, "understood": understood.intent, "at": now}
    )
    # Whether it waits for a person (DESIGN.md §2 "Inbox"): bot.services.inbox decides.
    inbox.settle(
        session,
        message,
        understood.intent,
        # A bare carrier word is answered in full: by Twilio on SMS, by our reply on WhatsApp.
        carrier=keyword.carrier_handled,
        answered_appointment=reply.answered_appointment,
        now=now,
    )
    _log_processed(message, understood, replied=reply.body is not None)
    return Processed(reply.body, understood.intent)


def _log_processed(message: Incoming, understood: Understood, *, replied: bool) -> None:
    log_event(
        log,
        "inbound.processed",
        sid=message.message_sid,
        sender=mask_phone(message.from_address),
        participant_id=message.participant_id,
        intent=understood.intent,
        crisis_rules=list(understood.crisis.matched),
        replied=replied,
    )


def _participant(session: Session, message: Incoming) -> Participant | None:
    if message.participant_id is None:
        return None
    return session.get(Participant, message.participant_id)


def receive(
    sessions: sessionmaker[Session], form: InboundForm, *, now: datetime, config: Config
) -> InboundOutcome:
    """Store, then process; never raises for a processing failure (the message stays stored).

    A duplicate MessageSid changes nothing and answers with the reply recorded for the
    original, if any: Twilio only retries when it did not get our answer, so the person has
    not seen it yet.

    One session on one connection, two transactions: the first commits the raw message before
    anything acts on it (on PostgreSQL the INSERT alone, committing itself); the second acts on
    it, from what the INSERT returned (the message is never read back).
    """
    with one_connection_session(sessions) as session, statements_commit(session) as begin:
        # On PostgreSQL each statement commits itself until `begin()`: the INSERT is stored
        # for good in one round trip (not BEGIN, INSERT, COMMIT), and so is an ordinary reply's
        # processing, one statement too; `process` calls `begin()` before anything larger.
        stored = store(session, form, now=now)
        if stored is None:
            recorded = stored_reply(session, form.message_sid)
            session.rollback()
            log_event(
                log, "inbound.duplicate", sid=form.message_sid, sender=mask_phone(form.from_address)
            )
            return InboundOutcome(reply=recorded, duplicate=True)
        session.commit()  # stored for good before anything acts on it (SQLite: this commit)
        try:
            processed = process(
                session, Incoming.stored(stored, form, now), now=now, config=config, begin=begin
            )
            session.commit()
        except Exception as exc:
            session.rollback()
            log_processing_failed(exc, sid=form.message_sid, sender=form.from_address)
            mark_failed(session, stored.id, exc, now=now)
            return InboundOutcome(reply=None, message_id=stored.id, failed=True)
    return InboundOutcome(reply=processed.reply, message_id=stored.id, intent=processed.intent)


def log_processing_failed(exc: Exception, *, sid: str, sender: str) -> None:
    # Only the exception's class: its text may quote SQL parameters, i.e. the body.
    log_event(
        log,
        "inbound.processing_failed",
        level=logging.ERROR,
        sid=sid,
        sender=mask_phone(sender),
        error=type(exc).__name__,
    )
