"""Twilio status callbacks: move an outbound message's status forward, never back.

Callbacks arrive out of order and more than once (a `sent` after a `delivered` is normal), and
for SIDs the outbox does not know. Some it will know soon: Twilio called back before the sender
committed the SID. Those are kept in early_status_callbacks and applied by the next scheduler
tick. Others it never will (another app on the same account): they are dropped after a day. Each callback is one conditional UPDATE that only applies when the new status ranks
above the stored one, so two callbacks at once cannot move a message backwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot.db import session_scope
from bot.log import log_event, mask_phone
from bot.models import EarlyStatusCallback, OutboundMessage, Participant
from bot.services import numbers
from bot.services.consent import opt_out
from bot.services.flags import raise_flag
from bot.services.outbox import status as outbox_status
from bot.services.outbox.claims import mark_needs_template
from bot.services.settings import get_setting
from bot.services.whatsapp_window import OUTSIDE_WINDOW_CODE

log = logging.getLogger(__name__)

# Twilio's MessageStatus values mapped onto ours. `read` (WhatsApp) is as good as delivered;
# Twilio's own `sending` says no more than our `queued`.
_TWILIO_STATUS = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
# How far along each status is. The three outcomes share the top rank: once one is known a
# later callback does not replace it. `unknown` (our send timed out) ranks with `sending`, so
# any callback resolves it.
RANK = {
    "pending": 0,
    "cancelled": 0,
    "sending": 1,
    "unknown": 1,
    "queued": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "needs_template": 4,
}
# The recipient has replied STOP to the carrier: texting them again is not allowed.
UNSUBSCRIBED_CODE = 21610
# A callback whose SID has not turned up in the outbox after this long is not ours.
EARLY_CALLBACK_TTL = timedelta(days=1)


@dataclass(frozen=True)
class StatusOutcome:
    known: bool
    moved: bool
    status: str | None = None


# Twilio's error codes are five digits; anything outside a database INTEGER is not one.
_MAX_CODE = 2**31 - 1


def _parse_code(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        code = int(raw.strip())
    except ValueError:
        return None
    return code if 0 <= code <= _MAX_CODE else None


def apply_status(
    session: Session,
    *,
    provider_sid: str,
    twilio_status: str,
    error_code: str | None,
    now: datetime,
    error_message: str | None = None,
) -> StatusOutcome:
    """Apply one status callback. A callback for a SID the outbox does not know is kept for
    `apply_early_callbacks`; an unknown status is ignored (the webhook answers 200 either way,
    or Twilio would retry)."""
    message = session.scalars(
        select(OutboundMessage).where(OutboundMessage.provider_sid == provider_sid)
    ).first()
    if message is None:
        log_event(log, "status.unknown_sid", sid=provider_sid, status=twilio_status[:20])
        session.add(
            EarlyStatusCallback(
                provider_sid=provider_sid,
                twilio_status=twilio_status.strip()[:20],
                error_code=_parse_code(error_code),
                received_at=now,
            )
        )
        return StatusOutcome(known=False, moved=False)
    new_status = _TWILIO_STATUS.get(twilio_status.strip().lower())
    if new_status is None:
        log_event(log, "status.unknown_status", sid=provider_sid, status=twilio_status[:40])
        return StatusOutcome(known=True, moved=False, status=message.status)
    code = _parse_code(error_code)
    if (
        code == OUTSIDE_WINDOW_CODE
        and message.channel == "whatsapp"
        and new_status in ("failed", "undelivered")
    ):
        # WhatsApp refused free text outside the window: the same as finding no template at
        # the claim (one program-level flag), never retried as free text.
        moved = bool(mark_needs_template(session, [message.id], now, code=code))
        session.refresh(message)
        return StatusOutcome(known=True, moved=moved, status=message.status)
    behind = [status for status, rank in RANK.items() if rank < RANK[new_status]]
    moved = outbox_status.advance(
        session,
        message.id,
        new_status,
        behind=behind,
        now=now,
        error_code=code,
        error_message=error_message,
    )
    code_is_new = moved and code is not None
    if not moved and code is not None and message.error_code is None:
        # A late callback that carries the error code still tells us why it failed.
        code_is_new = outbox_status.note_error_code(session, message.id, code)
    session.refresh(message)
    log_event(
        log,
        "status.applied" if moved else "status.stale",
        sid=provider_sid,
        status=twilio_status,
        stored=message.status,
        error_code=code,
        to=mask_phone(message.to_address),
    )
    # Acting once per message: a repeated callback does not count a second failure.
    if code is not None and code_is_new and message.participant_id is not None:
        act_on_error_code(session, message, code, now=now)
    if moved and message.status == "delivered":
        numbers.on_delivered(session, message, now)
    return StatusOutcome(known=True, moved=moved, status=message.status)


def apply_early_callbacks(sessions: sessionmaker[Session], now: datetime) -> int:
    """Apply the kept callbacks whose SID the outbox now knows, in the order they came, each in
    its own transaction, then drop those older than EARLY_CALLBACK_TTL. Returns how many were
    applied. Called by every scheduler tick: the table is empty or nearly so.

    One transaction per callback, so that a callback that cannot be applied is logged and
    dropped instead of failing the tick (and the sweep after it) on every run, and so that no
    transaction holds the locks of several messages while the status webhook takes them one by
    one. A row another tick is applying is skipped (SKIP LOCKED)."""
    with sessions() as session:
        waiting = session.scalars(
            select(EarlyStatusCallback.id)
            .join(OutboundMessage, OutboundMessage.provider_sid == EarlyStatusCallback.provider_sid)
            .order_by(EarlyStatusCallback.id)
        ).all()
    applied = sum(_apply_early_callback(sessions, callback_id) for callback_id in waiting)
    with session_scope(sessions) as session:
        session.execute(
            delete(EarlyStatusCallback).where(
                EarlyStatusCallback.received_at < now - EARLY_CALLBACK_TTL
            )
        )
    return applied


def _apply_early_callback(sessions: sessionmaker[Session], callback_id: int) -> bool:
    with session_scope(sessions) as session:
        callback = session.scalars(
            select(EarlyStatusCallback)
            .where(EarlyStatusCallback.id == callback_id)
            .with_for_update(skip_locked=True)
        ).first()
        if callback is None:
            return False  # another tick has it
        try:
            with session.begin_nested():
                apply_status(
                    session,
                    provider_sid=callback.provider_sid,
                    twilio_status=callback.twilio_status,
                    error_code=None if callback.error_code is None else str(callback.error_code),
                    # When Twilio said so, not when this tick ran.
                    now=callback.received_at,
                )
        except Exception as exc:
            log_event(
                log,
                "status.early_callback_failed",
                level=logging.ERROR,
                sid=callback.provider_sid,
                error=type(exc).__name__,
            )
            session.delete(callback)
            return False
        session.delete(callback)
        return True


def act_on_error_code(
    session: Session, message: OutboundMessage, code: int, *, now: datetime
) -> None:
    """What a Twilio error code on a participant's message means for them, whether it came in a
    status callback or as the answer to the send itself (bot/services/outbox/outcomes.py): 21610 (they told
    the carrier STOP) opts them out; a delivery-failure code flags `delivery_failed`, unless a
    text sent after this one has been delivered already."""
    participant = session.get(Participant, message.participant_id)
    if participant is None:
        return
    if code == UNSUBSCRIBED_CODE:
        opt_out(
            session,
            participant,
            now=now,
            method="carrier_21610",
            wording=None,
            actor="carrier",
        )
        return
    failed_codes = {int(c) for c in get_setting(session, "escalation")["delivery_failed_codes"]}
    # A text sent after this one was delivered already (its callback came first): the number
    # reaches them, and that delivery would have resolved the flag had the callbacks come in
    # the order the texts were sent.
    if code in failed_codes and not numbers.delivered_after(session, message):
        raise_flag(
            session,
            reason="delivery_failed",
            now=now,
            participant_id=participant.id,
            detail={"error_code": code, "outbound_message_id": message.id},
        )
    # Two failures in a row after earlier deliveries: the number may have changed hands.
    numbers.after_delivery_failure(session, message, code, now)
