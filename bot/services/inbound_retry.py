"""Retrying what a webhook did not finish: texts stored but not processed.

Called by every scheduler tick. Each text goes through the same path as in the webhook
(bot.services.inbound.process), with its reply sent through the outbox instead of TwiML.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.db import one_connection_session
from bot.log import log_event, mask_phone
from bot.models import InboundMessage
from bot.services import inbound
from bot.services.inbound_store import Incoming, mark_failed

log = logging.getLogger(__name__)

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


def process_stuck(sessions: sessionmaker[Session], now: datetime, config: Config) -> int:
    """Process the messages their webhook stored but did not finish: still `received` a minute
    later (the web process died mid-way) or `failed` (the database failed mid-way). Without
    this a crisis text caught by such a failure would raise no flag and page nobody.

    Called by every scheduler tick, for messages up to RETRY_STUCK_FOR old; one transaction
    each, skipping a row another tick holds. The reply can no longer go back in TwiML, so it
    goes through the outbox (bot.services.inbound_handlers.record_reply). Returns how many
    were processed."""
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
        row = session.scalars(
            select(InboundMessage)
            .where(InboundMessage.id == message_id, InboundMessage.processing_state != "processed")
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return False  # done meanwhile, or another tick has it
        message = Incoming.of(row)
        sid, sender = message.message_sid, message.from_address
        try:
            inbound.process(session, message, now=now, config=config, in_twiml=False)
            session.commit()
        except Exception as exc:
            session.rollback()
            inbound.log_processing_failed(exc, sid=sid, sender=sender)
            try:
                mark_failed(session, message_id, exc, now=now)
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
