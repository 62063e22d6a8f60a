"""Outcomes: what the transport answered for each claim, recorded on its row.

A success records the provider's SID and first status (`queued`, `sent` …) and marks the
planned contact `sent`. Retryable errors (429, 20429, 5xx, connection failures before the
request left) go back to `pending` with exponential backoff (or the server's Retry-After);
permanent errors are `failed` with the error code and never retried (21610 opts the
participant out exactly as the status callback does, bot.services.delivery.act_on_error_code);
a timeout after the request left is `unknown` and flagged: Twilio has no idempotency key on
message create, so it is never blindly retried.

`commit_outcomes` records a group in one transaction. PostgreSQL: the commit that records
check-ins as sent also makes their "reply by" expectations (`create_reply_expectations`, the
sweep's own statement for just those texts), so the sweep after the sending has none left to
make; its pass stays the safety net for any missed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, or_, text, update
from sqlalchemy.orm import Session, sessionmaker

from bot.bulk import array_param
from bot.db import is_postgresql, session_scope
from bot.log import log_event, mask_phone
from bot.models import OutboundMessage
from bot.services import contacts, numbers
from bot.services.delivery import UNSUBSCRIBED_CODE, act_on_error_code
from bot.services.expectations import create_reply_expectations
from bot.services.flags import raise_flag
from bot.services.outbox import account_errors
from bot.services.outbox.claims import Claim, SendCounts, flag_unknown, mark_needs_template
from bot.services.whatsapp_window import OUTSIDE_WINDOW_CODE
from bot.transport.base import SendResult, TransportError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
# Twilio's first statuses mean "accepted, not yet sent" -> our `queued`.
PROVIDER_STATUS = {
    "accepted": "queued",
    "queued": "queued",
    "scheduled": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}


def _outbox_table() -> Table:
    return cast(Table, OutboundMessage.__table__)


@dataclass
class Outcomes:
    """Outcomes not yet recorded, in the order the sends were made."""

    sent: list[tuple[Claim, SendResult]] = field(default_factory=list)
    errors: list[tuple[Claim, TransportError]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.errors)


def record_sent_many(
    session: Session, sent: Sequence[tuple[Claim, SendResult]], now: datetime
) -> None:
    if not sent:
        return
    # `unknown` too: if a slow worker comes back after its claim was declared stale, the SID
    # it got is the better information.
    if is_postgresql(session):
        table, dialect = _outbox_table(), session.get_bind().dialect
        # One statement with three bound arrays instead of an executemany (see bot/bulk.py).
        session.execute(
            text(
                "UPDATE outbound_messages SET provider_sid = v.sid, status = v.status,"
                " sent_at = :now, status_updated_at = :now"
                " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:sids AS VARCHAR(64)[]),"
                " CAST(:statuses AS VARCHAR(12)[])) AS v(id, sid, status)"
                " WHERE outbound_messages.id = v.id"
                " AND outbound_messages.status IN ('sending', 'unknown')"
                " AND outbound_messages.provider_sid IS NULL"
            ).bindparams(
                bindparam("now", now, type_=table.c.sent_at.type),
                array_param("ids", [c.message_id for c, _ in sent], table.c.id.type, dialect),
                array_param(
                    "sids", [r.provider_sid for _, r in sent], table.c.provider_sid.type, dialect
                ),
                array_param(
                    "statuses",
                    [PROVIDER_STATUS.get(r.status, "queued") for _, r in sent],
                    table.c.status.type,
                    dialect,
                ),
            )
        )
    else:
        _record_sent_executemany(session, sent, now)
    contacts.mark_sent(
        session, [c.planned_contact_id for c, _ in sent if c.planned_contact_id is not None], now
    )


def _record_sent_executemany(
    session: Session, sent: Sequence[tuple[Claim, SendResult]], now: datetime
) -> None:
    table = _outbox_table()
    session.execute(
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            # Not IN (...): an expanding parameter cannot go into an executemany.
            or_(table.c.status == "sending", table.c.status == "unknown"),
            table.c.provider_sid.is_(None),
        )
        .values(
            provider_sid=bindparam("b_sid"),
            status=bindparam("b_status"),
            sent_at=now,
            status_updated_at=now,
        ),
        [
            {
                "b_id": claim.message_id,
                "b_sid": result.provider_sid,
                "b_status": PROVIDER_STATUS.get(result.status, "queued"),
            }
            for claim, result in sent
        ],
    )


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    if retry_after is not None and retry_after > 0:
        return min(timedelta(seconds=retry_after), BACKOFF_MAX)
    factor: int = 2 ** max(attempts - 1, 0)
    return min(BACKOFF_BASE * factor, BACKOFF_MAX)


def record_error(
    session: Session, claim: Claim, error: TransportError, now: datetime, counts: SendCounts
) -> None:
    message = session.get(OutboundMessage, claim.message_id)
    assert message is not None
    if message.status != "sending":
        return
    if error.account:
        # The account, not this message: kept pending, the program flagged.
        account_errors.hold(session, message, claim, error, now, counts)
        return
    message.error_code = error.code
    message.error_message = str(error)[:255]
    message.status_updated_at = now
    if error.request_sent:
        message.status = "unknown"
        counts.unknown += 1
        flag_unknown(session, message, now, "timeout_after_request")
        return
    if error.code == OUTSIDE_WINDOW_CODE and message.channel == "whatsapp":
        # WhatsApp refused free text outside the person's window: never retried as free text.
        mark_needs_template(session, [message.id], now, code=error.code)
        counts.skipped += 1
        if message.planned_contact_id is not None:
            contacts.decide(session, [message.planned_contact_id], "skipped", "needs_template", now)
        return
    retry_at = now + backoff(claim.attempts, error.retry_after)
    retry_ok = message.not_after is None or retry_at < message.not_after
    if not error.permanent and claim.attempts < MAX_ATTEMPTS and retry_ok:
        message.status = "pending"
        message.send_after = retry_at
        counts.retried += 1
        return
    message.status = "failed"
    counts.failed += 1
    if message.planned_contact_id is not None:
        contacts.decide(session, [message.planned_contact_id], "skipped", "send_failed", now)
    log_event(
        log,
        "send.failed",
        logging.WARNING,
        message=message.id,
        to=mask_phone(message.to_address),
        code=error.code,
        permanent=error.permanent,
    )
    if message.participant_id is None:
        return
    if error.code == UNSUBSCRIBED_CODE:
        # The carrier says this person texted STOP: the same opt-out as the status callback's
        # (cancels their plan and pending rows, records consent, flags `opted_out` for the coach).
        act_on_error_code(session, message, error.code, now=now)
    else:
        raise_flag(
            session,
            reason="delivery_failed",
            severity="high",
            now=now,
            participant_id=message.participant_id,
            detail={"message_id": message.id, "error_code": error.code},
        )
        if error.code is not None:
            numbers.after_delivery_failure(session, message, error.code, now)


def _reply_expectations_unless_failing(
    session: Session, now: datetime, sent: Sequence[tuple[Claim, SendResult]]
) -> int:
    """create_reply_expectations in a savepoint. If it fails (a broken escalation setting,
    say), the record of what was sent must still commit: otherwise those rows would stay
    `sending` and end `unknown`, flagged, though they went out. The failure is logged and the
    sweep's own pass makes the expectations (and meets the failure where it belongs)."""
    try:
        with session.begin_nested():
            return create_reply_expectations(session, now, [c.message_id for c, _ in sent])
    except Exception as exc:
        # Only the class: an error's text may quote SQL parameters.
        log_event(log, "send.expectations_failed", level=logging.ERROR, error=type(exc).__name__)
        return 0


def commit_outcomes(
    sessions: sessionmaker[Session], outcomes: Outcomes, now: datetime, counts: SendCounts
) -> None:
    """Record `outcomes` in one transaction, count them, and empty `outcomes`."""
    if not outcomes:
        return
    expectations = 0
    with session_scope(sessions) as session:
        record_sent_many(session, outcomes.sent, now)
        if is_postgresql(session) and outcomes.sent:
            # Their "reply by" expectations (the check-ins among them) in the same commit:
            # the sweep's create_expectations, after all the sending, then finds nothing left
            # to do for them (SQLite: the sweep makes them).
            expectations = _reply_expectations_unless_failing(session, now, outcomes.sent)
        for claim, error in outcomes.errors:
            record_error(session, claim, error, now, counts)
    counts.sent += len(outcomes.sent)
    counts.expectations += expectations
    for claim, result in outcomes.sent if log.isEnabledFor(logging.INFO) else ():
        log_event(
            log,
            "send.sent",
            message=claim.message_id,
            to=mask_phone(claim.request.to),
            sid=result.provider_sid,
        )
    outcomes.sent.clear()
    outcomes.errors.clear()
