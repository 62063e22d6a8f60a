"""The escalation ladder: an urgent or high flag that nobody has acknowledged pages the next
person, `ladder_minutes` apart, until someone acknowledges it.

Steps (program setting `escalation.ladder_steps`, default DESIGN.md "Pages"):
1. `assigned_coach` — the participant's coach, or their covering coach when the coach is away;
2. `covering_coach` — the coach's covering coach (skipped when step 1 already paged them);
3. `coordinators` — every active coordinator with a phone.

People without a phone are skipped with a `page_skipped` event on the flag and the ladder moves
on at once (nobody waits 15 minutes for a page that never went out). After the last step, the
last step is paged again every `ladder_minutes` (`repeat_last_step`) until someone
acknowledges: a flag must never fall between two people. When a page waits for the morning (high
severity in quiet hours), the next step is counted from when that page goes out.

`flag.ladder_step` is how many steps have been done; `flag.next_page_at` when the next is due.
Acknowledging (bot.services.flags.acknowledge_flag) clears `next_page_at` and the ladder stops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.log import log_event
from bot.models import Flag, FlagEvent, User
from bot.services.flags import add_event
from bot.services.paging import PageBatch, ladder_recipients, page_user
from bot.services.settings import get_setting

logger = logging.getLogger(__name__)

LADDER_SEVERITIES = ("high", "urgent")


@dataclass
class LadderCounts:
    flags: int = 0
    pages: int = 0
    skipped: int = 0


def _paged_user_ids(session: Session, flag: Flag) -> set[int]:
    details = session.scalars(
        select(FlagEvent.detail).where(FlagEvent.flag_id == flag.id, FlagEvent.kind == "paged")
    )
    return {int(d["user_id"]) for d in details if d and "user_id" in d}


def start_ladder(session: Session, flag: Flag, now: datetime, config: Config) -> int:
    """Page the first step of a new urgent flag's ladder at once (a crisis text: somebody must
    know now, not at the next sweep) and schedule the next one. The same walk as every later
    step (`advance_flag`): a step with nobody who can be texted is logged on the flag and the
    next step is tried at once. Returns how many pages were enqueued."""
    return advance_flag(session, flag, now=now, config=config).pages


def _page(
    session: Session,
    pages: PageBatch | None,
    *,
    flag: Flag,
    user: User,
    step: int,
    now: datetime,
    config: Config,
) -> datetime | None:
    """Page `user` now, or collect the page in `pages`; when it goes, or None (skipped)."""
    if pages is not None:
        return pages.add(session, flag=flag, user=user, step=step, now=now, config=config)
    message = page_user(session, flag=flag, user=user, step=step, now=now, config=config)
    return message.send_after if message is not None else None


def advance_flag(
    session: Session,
    flag: Flag,
    *,
    now: datetime,
    config: Config,
    pages: PageBatch | None = None,
) -> LadderCounts:
    """Do the flag's next ladder step (and the ones after it at once while a step pages nobody);
    schedule the step after that. The one walk of the ladder: its first step (`start_ladder`)
    and every later one (`advance_ladder`)."""
    counts = LadderCounts(flags=1)
    if flag.state != "open" or flag.severity not in LADDER_SEVERITIES:
        flag.next_page_at = None
        return counts
    rules = get_setting(session, "escalation")
    steps: list[str] = list(rules["ladder_steps"])
    gap = timedelta(minutes=float(rules["ladder_minutes"]))
    repeat = bool(rules.get("repeat_last_step", True))
    # A flag whose ladder has not started has paged nobody (pages are only sent by this walk,
    # which moves `ladder_step` on): no need to ask (the crisis path of the webhook).
    already = _paged_user_ids(session, flag) if flag.ladder_step else set()
    step = flag.ladder_step
    went_out: list[datetime] = []
    while not went_out:
        if step >= len(steps) and not (repeat and steps and step > 0):
            break
        step_name = steps[min(step, len(steps) - 1)]
        step += 1
        try:
            recipients = ladder_recipients(session, flag, step_name)
        except ValueError:  # a step name the settings page let through; skip, never stall
            recipients = []
        if step_name != "coordinators":
            # A coach already paged for this flag (the cover, paged at step 1 while the coach
            # is away) is not paged again as the "next" person.
            recipients = [user for user in recipients if user.id not in already]
        if not recipients:
            add_event(
                session,
                flag,
                "page_skipped",
                now=now,
                detail={"step": step, "ladder_step": step_name, "why": "nobody at this step"},
            )
            counts.skipped += 1
        reached = 0
        for user in recipients:
            at = _page(session, pages, flag=flag, user=user, step=step, now=now, config=config)
            if at is None:
                counts.skipped += 1
                continue
            reached += 1
            counts.pages += 1
            already.add(user.id)
            went_out.append(max(at, now))
        if not reached:
            # Shown to coordinators and admins until someone acknowledges the flag.
            add_event(
                session,
                flag,
                "nobody_reached",
                now=now,
                detail={"step": step, "ladder_step": step_name},
            )
        if not went_out and step >= len(steps):
            # A whole pass found nobody to page: repeating it would only log skips forever.
            break
    flag.ladder_step = step
    flag.updated_at = now
    if went_out:
        flag.next_page_at = max(went_out) + gap
    else:
        flag.next_page_at = None
        add_event(session, flag, "ladder_exhausted", now=now, detail={"step": step})
        log_event(logger, "ladder_exhausted", level=logging.ERROR, flag_id=flag.id, step=step)
    return counts


def advance_ladder(
    session: Session, now: datetime, config: Config, *, limit: int = 200
) -> LadderCounts:
    """Page the next person for every urgent or high flag whose next page is due, and start the
    ladder of such flags that have none yet (raised by the sweep or by delivery failures).

    Cost grows with the open urgent/high flags due, not with the population: the two branches
    use the next_page_at index and the (state, severity, opened_at) index. Two workers at once
    skip each other's flags (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer), and
    the outbox key per (flag, step, person) makes a repeated step harmless anyway.
    """
    total = LadderCounts()
    flags = session.scalars(
        select(Flag)
        .where(
            Flag.state == "open",
            Flag.severity.in_(LADDER_SEVERITIES),
            or_(
                Flag.next_page_at <= now,
                and_(Flag.next_page_at.is_(None), Flag.ladder_step == 0),
            ),
        )
        .order_by(Flag.next_page_at, Flag.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    pages = PageBatch()  # one text per person, however many of their flags are due
    for flag in flags:
        counts = advance_flag(session, flag, now=now, config=config, pages=pages)
        total.flags += 1
        total.pages += counts.pages
        total.skipped += counts.skipped
    pages.flush(session, now=now, config=config)
    return total
