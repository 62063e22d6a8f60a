"""Account errors stop, not fail (issue 17.4).

When Twilio refuses a message because of the account, not the message (authentication, a
suspended or unknown account, a region the account may not send to; bot.transport.twilio
classifies them, TransportError.account), the message is not at fault: it goes back to
`pending` with its attempt given back (never `failed`, never a burned retry), and one
program-level flag `twilio_account` (high, participant NULL, one unresolved) tells the
admins, who are paged once. An error that halts (authentication, suspension) also stops the
send pass (scheduler/send.py): the next pass tries again with one request, and the first pass
that sends without such an error resolves the flag.

The page goes through the outbox like any other, so while the account cannot send it waits
too (and is withdrawn when the flag resolves); the flag is on the dashboard's queue at once.
A region refusal (21408) does not halt: that message waits ACCOUNT_REGION_RETRY before it is
tried again, and the rest of the pass goes on.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.log import log_event, mask_phone
from bot.models import FlagEvent, OutboundMessage, User
from bot.services.flags import open_program_flag, raise_program_flag, resolve_flag
from bot.services.outbox.claims import Claim, SendCounts
from bot.services.paging import page_user
from bot.transport.base import TransportError

log = logging.getLogger(__name__)

REASON = "twilio_account"
# A message to a region the account may not send to is tried again this much later.
ACCOUNT_REGION_RETRY = timedelta(minutes=30)


def hold(
    session: Session,
    message: OutboundMessage,
    claim: Claim,
    error: TransportError,
    now: datetime,
    counts: SendCounts,
) -> None:
    """Put a message refused for the account's sake back to `pending`, its attempt given
    back, and raise (or count on) the program's `twilio_account` flag."""
    message.status = "pending"
    message.attempts = max(claim.attempts - 1, 0)
    message.claimed_at = None
    message.claimed_by = None
    message.handed_at = None
    message.error_code = error.code
    message.error_message = str(error)[:255]
    message.status_updated_at = now
    if not error.halt:
        message.send_after = now + ACCOUNT_REGION_RETRY
    counts.held += 1
    raise_program_flag(
        session, reason=REASON, now=now, detail={"code": error.code, "message_id": message.id}
    )
    log_event(
        log,
        "send.account_error",
        logging.ERROR,
        message=message.id,
        to=mask_phone(message.to_address),
        code=error.code,
        halt=error.halt,
    )


def after_pass(session: Session, counts: SendCounts, now: datetime, config: Config) -> None:
    """At the end of a send pass: page the admins once for an open `twilio_account` flag; a
    pass that sent and met no account error resolves it (sending works again)."""
    flag = open_program_flag(session, REASON)
    if flag is None:
        return
    if counts.sent and not counts.held:
        resolve_flag(
            session,
            flag,
            outcome="no_action_needed",
            note="Twilio accepted messages again.",
            now=now,
            user_id=None,
            automatic=True,
        )
        log_event(log, "send.account_recovered", flag_id=flag.id)
        return
    paged = session.scalar(
        select(exists().where(FlagEvent.flag_id == flag.id, FlagEvent.kind == "paged"))
    )
    if paged or flag.ladder_step:
        return
    admins = session.scalars(
        select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
    ).all()
    for admin in admins:
        page_user(session, flag=flag, user=admin, step=1, now=now, config=config)
    # The admins are the only ones to page: the escalation ladder (coaches, coordinators)
    # leaves this flag alone.
    flag.ladder_step = 1
    flag.next_page_at = None
    flag.updated_at = now
