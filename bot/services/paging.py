"""Pages to staff: a neutral text through the outbox telling a person a flag needs them.

A page names the severity, a short label and a dashboard link, never what the participant said
or why the flag was raised (DESIGN.md, Precise rules, "Pages"). The escalation ladder
(bot.services.ladder, the one walk of its steps) pages with `page_user` the people
`ladder_recipients` names.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.log import log_event, mask_phone
from bot.models import Flag, OutboundMessage, Participant, User
from bot.services.flags import add_event
from bot.services.outbox import enqueue
from bot.services.settings import get_setting
from bot.services.templates import render_message
from bot.timeutil import next_quiet_end, parse_hhmm

log = logging.getLogger(__name__)

# Staff pages are written in the program's language of work.
PAGE_LANGUAGE = "en"


# What a program-level flag (no participant, no number) is about, as a page names it.
PROGRAM_LABELS = {"twilio_account": "the Twilio account"}


def page_label(session: Session, flag: Flag) -> str:
    """Who the flag is about, as staff see it in a page: the participant's label, the masked
    number of an unknown sender, or what a program-level flag is about."""
    if flag.participant_id is not None:
        participant = session.get(Participant, flag.participant_id)
        if participant is not None:
            return participant.label
    if flag.sender_address is None:
        return PROGRAM_LABELS.get(flag.reason, "the program")
    return mask_phone(flag.sender_address) or "an unknown number"


def page_body(session: Session, flag: Flag, config: Config) -> str:
    return render_message(
        session,
        "coach_page",
        PAGE_LANGUAGE,
        {
            "severity": flag.severity,
            "participant_label": page_label(session, flag),
            "dashboard_url": f"{config.public_base_url}/flags/{flag.id}",
            "program_name": config.program_name,
        },
    )


def page_user(
    session: Session, *, flag: Flag, user: User, step: int, now: datetime, config: Config
) -> OutboundMessage | None:
    """Enqueue one page to `user` for `flag` at ladder `step`; None (and a `page_skipped` event)
    when the person cannot be texted. Urgent pages go at once, even in quiet hours; anything
    less waits for the morning in the program's time zone. Paging the same person for the same
    flag and step twice enqueues one message (the idempotency key)."""
    if not user.active or not user.phone:
        add_event(
            session,
            flag,
            "page_skipped",
            now=now,
            detail={
                "step": step,
                "user_id": user.id,
                "why": "inactive" if not user.active else "no phone",
            },
        )
        log_event(log, "page.skipped", flag_id=flag.id, step=step, user_id=user.id)
        return None
    urgent = flag.severity == "urgent"
    send_after = now
    if not urgent:
        quiet = get_setting(session, "quiet_hours")
        send_after = next_quiet_end(
            now, config.zone, parse_hhmm(quiet["start"]), parse_hhmm(quiet["end"])
        )
    result = enqueue(
        session,
        idempotency_key=f"page:{flag.id}:{step}:{user.id}",
        purpose="page",
        channel="sms",
        to_address=user.phone,
        body=page_body(session, flag, config),
        now=now,
        send_after=send_after,
        user_id=user.id,
        ignore_quiet_hours=urgent,
    )
    if result.created:
        add_event(
            session,
            flag,
            "paged",
            now=now,
            detail={"step": step, "user_id": user.id, "outbound_message_id": result.message.id},
        )
        log_event(
            log,
            "page.enqueued",
            flag_id=flag.id,
            step=step,
            user_id=user.id,
            to=mask_phone(user.phone),
            severity=flag.severity,
        )
    return result.message


def _assigned_coach(session: Session, participant: Participant | None) -> User | None:
    if participant is None or participant.coach_id is None:
        return None
    return session.get(User, participant.coach_id)


def ladder_recipients(session: Session, flag: Flag, step_name: str) -> list[User]:
    """The people one ladder step pages: `assigned_coach` (their covering coach instead while
    they are away), `covering_coach`, or `coordinators` (every active coordinator)."""
    participant = (
        session.get(Participant, flag.participant_id) if flag.participant_id is not None else None
    )
    coach = _assigned_coach(session, participant)
    if step_name == "assigned_coach":
        if coach is None:
            return []
        if coach.away and coach.covering_user_id is not None:
            cover = session.get(User, coach.covering_user_id)
            return [cover] if cover is not None else []
        return [coach]
    if step_name == "covering_coach":
        if coach is None or coach.covering_user_id is None or coach.away:
            # While the coach is away the cover was already paged at the first step.
            return []
        cover = session.get(User, coach.covering_user_id)
        return [cover] if cover is not None else []
    if step_name == "coordinators":
        return list(
            session.scalars(
                select(User)
                .where(User.role == "coordinator", User.active.is_(True))
                .order_by(User.id)
            )
        )
    raise ValueError(f"unknown ladder step {step_name!r}")


@dataclass
class _Waiting:
    flag: Flag
    user: User
    step: int


@dataclass
class PageBatch:
    """Pages collected over one ladder pass and sent as one text per person (issue 17.8): many
    flags for one coach in one pass become one page that counts them ("urgent flag for Sam R.
    and 19 more"), linking to the queue instead of one flag. A person with one flag gets the
    usual page. Urgent and high pages are counted apart (high ones wait for the morning)."""

    waiting: dict[tuple[int, bool], list[_Waiting]] = field(default_factory=dict)

    def add(
        self, session: Session, *, flag: Flag, user: User, step: int, now: datetime, config: Config
    ) -> datetime | None:
        """Collect a page; returns when it will go, or None (and `page_skipped`) when the
        person cannot be texted, as page_user does."""
        if not user.active or not user.phone:
            page_user(session, flag=flag, user=user, step=step, now=now, config=config)
            return None
        urgent = flag.severity == "urgent"
        self.waiting.setdefault((user.id, urgent), []).append(_Waiting(flag, user, step))
        return _send_after(session, urgent, now, config)

    def flush(self, session: Session, *, now: datetime, config: Config) -> int:
        """Enqueue the collected pages; returns how many texts that made."""
        texts = 0
        for (_user_id, urgent), pages in self.waiting.items():
            texts += 1
            if len(pages) == 1:
                page = pages[0]
                page_user(
                    session, flag=page.flag, user=page.user, step=page.step, now=now, config=config
                )
                continue
            _page_many(session, pages, urgent=urgent, now=now, config=config)
        self.waiting.clear()
        return texts


def _send_after(session: Session, urgent: bool, now: datetime, config: Config) -> datetime:
    if urgent:
        return now
    quiet = get_setting(session, "quiet_hours")
    return next_quiet_end(now, config.zone, parse_hhmm(quiet["start"]), parse_hhmm(quiet["end"]))


def _page_many(
    session: Session, pages: list[_Waiting], *, urgent: bool, now: datetime, config: Config
) -> None:
    user = pages[0].user
    assert user.phone is not None
    keys = ",".join(f"{p.flag.id}:{p.step}" for p in sorted(pages, key=lambda p: p.flag.id))
    digest = hashlib.sha256(keys.encode()).hexdigest()[:24]
    first = min(pages, key=lambda p: p.flag.id)
    body = render_message(
        session,
        "coach_page",
        PAGE_LANGUAGE,
        {
            "severity": "urgent" if urgent else "high",
            "participant_label": f"{page_label(session, first.flag)} and {len(pages) - 1} more",
            "dashboard_url": f"{config.public_base_url}/",
            "program_name": config.program_name,
        },
    )
    result = enqueue(
        session,
        idempotency_key=f"pages:{user.id}:{digest}",
        purpose="page",
        channel="sms",
        to_address=user.phone,
        body=body,
        now=now,
        send_after=_send_after(session, urgent, now, config),
        user_id=user.id,
        ignore_quiet_hours=urgent,
    )
    if not result.created:
        return
    for page in pages:
        add_event(
            session,
            page.flag,
            "paged",
            now=now,
            detail={
                "step": page.step,
                "user_id": user.id,
                "outbound_message_id": result.message.id,
                "with_other_flags": len(pages) - 1,
            },
        )
    log_event(
        log,
        "page.enqueued_together",
        user_id=user.id,
        to=mask_phone(user.phone),
        flags=len(pages),
        severity="urgent" if urgent else "high",
    )
