"""Pages to staff: a neutral SMS through the outbox saying a flag needs someone.

Minimal version written by the escalation helper (issue 6) against the signature agreed in
HELPERS.md, because the inbound helper's version (issue 4) was not on main yet; the two should
be reconciled at merge time (the signature and the idempotency key format are what matter).

A page names the severity and a short participant label, never the reason or anything the
participant wrote (DESIGN.md "Pages"). Urgent pages go even in quiet hours; high ones wait for
the morning in the program's time zone (staff live by the program's clock).
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.config import Config
from bot.log import log_event, mask_phone
from bot.models import Flag, OutboundMessage, Participant, User
from bot.services.flags import add_event
from bot.services.outbox import enqueue
from bot.services.settings import get_setting
from bot.services.templates import render_message
from bot.timeutil import next_quiet_end, parse_hhmm

logger = logging.getLogger(__name__)


def page_key(flag_id: int, step: int, user_id: int) -> str:
    """The outbox idempotency key of one page: a step pages each person at most once."""
    return f"page:{flag_id}:{step}:{user_id}"


def participant_label(session: Session, flag: Flag) -> str:
    if flag.participant_id is None:
        return "an unknown number"
    participant = session.get(Participant, flag.participant_id)
    return participant.label if participant is not None else "a participant"


def page_user(
    session: Session, *, flag: Flag, user: User, step: int, now: datetime, config: Config
) -> OutboundMessage | None:
    """Enqueue one page to `user` for `flag` at ladder `step` and log it on the flag (`paged`),
    or log `page_skipped` and return None when the person cannot be paged (no phone, inactive)."""
    if not user.active or not user.phone:
        reason = "inactive" if not user.active else "no_phone"
        add_event(
            session,
            flag,
            "page_skipped",
            now=now,
            detail={"step": step, "user_id": user.id, "reason": reason},
        )
        log_event(
            logger, "page_skipped", flag_id=flag.id, step=step, user_id=user.id, reason=reason
        )
        return None
    urgent = flag.severity == "urgent"
    send_after = now
    if not urgent:
        quiet = get_setting(session, "quiet_hours")
        send_after = next_quiet_end(
            now,
            ZoneInfo(config.program_timezone),
            parse_hhmm(quiet["start"]),
            parse_hhmm(quiet["end"]),
        )
    body = render_message(
        session,
        "coach_page",
        "en",
        {
            "severity": flag.severity,
            "participant_label": participant_label(session, flag),
            "dashboard_url": f"{config.public_base_url.rstrip('/')}/flags/{flag.id}",
            "program_name": config.program_name,
        },
    )
    queued = enqueue(
        session,
        idempotency_key=page_key(flag.id, step, user.id),
        purpose="page",
        channel="sms",
        to_address=user.phone,
        body=body,
        now=now,
        send_after=send_after,
        user_id=user.id,
        ignore_quiet_hours=urgent,
    )
    if queued.created:
        add_event(
            session,
            flag,
            "paged",
            now=now,
            detail={
                "step": step,
                "user_id": user.id,
                "send_after": send_after.isoformat(),
                "outbound_message_id": queued.message.id,
            },
        )
        log_event(
            logger,
            "paged",
            flag_id=flag.id,
            step=step,
            user_id=user.id,
            to=mask_phone(user.phone),
            send_after=send_after,
        )
    return queued.message


def start_ladder(session: Session, flag: Flag, now: datetime, config: Config) -> None:
    """Page the first step at once (the assigned coach, or their cover when away)."""
    from bot.services.ladder import advance_flag

    advance_flag(session, flag, now=now, config=config)
