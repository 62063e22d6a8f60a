"""The participants list a coach works from (issue 18.4), without Flask: full display name
(staff see the last name), coach, days since release, the last message (direction, first line,
when), open flags by severity, language; search, filter by coach and by state, sort by name,
last contact or release. Every query goes through the caseload filter, in SQL.

"Last contact" is the latest message either way: a text that came in, or one we sent or are
sending (a cancelled row never reached them and does not count). It is found by one
correlated probe per person on each side's (participant_id, time) index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, String, case, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from bot.models import Flag, InboundMessage, OutboundMessage, Participant, User
from bot.models.flags import SEVERITIES
from bot.services.caseload import Viewer, caseload_clause
from bot.services.inbox import first_line

PAGE_SIZE = 50
STATUSES = ("active", "paused", "opted_out", "closed")
# The state filter: a status, or what needs a person.
STATES = {
    "active": "Active",
    "paused": "Paused",
    "opted_out": "Opted out",
    "closed": "Closed",
    "waiting": "Waiting for a reply",
    "flagged": "With open flags",
}
SORTS = {
    "name": "Name",
    "recent": "Latest contact first",
    "quiet": "Longest without contact",
    "release": "Most recently released",
}
NO_COACH = "none"
Query = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class LastMessage:
    direction: str  # "in" or "out"
    first_line: str
    at: datetime


@dataclass(frozen=True)
class ListRow:
    id: int
    external_id: str
    display_name: str
    phone: str
    status: str
    language: str
    timezone: str
    coach_name: str | None
    release_date: date
    days_since_release: int  # negative: released in that many days
    last: LastMessage | None
    flags: dict[str, int] = field(default_factory=dict)  # severity -> open flags, urgent first
    waiting: bool = False

    @property
    def release_label(self) -> str:
        days = self.days_since_release
        if days < 0:
            return "due in 1 day" if days == -1 else f"due in {-days} days"
        if days == 0:
            return "today"
        return "1 day" if days == 1 else f"{days} days"


@dataclass(frozen=True)
class ListPage:
    rows: list[ListRow]
    total: int
    page: int
    pages: int


def _last_in_at() -> Any:
    return (
        select(func.max(InboundMessage.received_at))
        .where(InboundMessage.participant_id == Participant.id)
        .scalar_subquery()
    )


def _last_out_at() -> Any:
    return (
        select(func.max(OutboundMessage.created_at))
        .where(
            OutboundMessage.participant_id == Participant.id,
            OutboundMessage.status != "cancelled",
        )
        .scalar_subquery()
    )


def last_contact_at() -> ColumnElement[Any]:
    """The latest message either way, as a SQL expression on Participant (NULL: none yet)."""
    last_in, last_out = _last_in_at(), _last_out_at()
    return case(
        (last_in.is_(None), last_out),
        (last_out.is_(None), last_in),
        (last_in > last_out, last_in),
        else_=last_out,
    )


def _search(query: Query, q: str) -> Query:
    q = q.strip()
    if not q:
        return query
    like = f"%{q.lower()}%"
    digits = "".join(c for c in q if c.isdigit())
    conditions: list[ColumnElement[bool]] = [
        func.lower(Participant.first_name).like(like),
        func.lower(Participant.last_name).like(like),
        func.lower(Participant.first_name + " " + func.coalesce(Participant.last_name, "")).like(
            like
        ),
        func.lower(Participant.external_id).like(like),
    ]
    if len(digits) >= 3:
        conditions.append(Participant.phone.like(f"%{digits}%"))
    if q.isdigit():
        conditions.append(cast(Participant.id, String) == q)
    return query.where(or_(*conditions))


def _state(query: Query, state: str) -> Query:
    if state in STATUSES:
        return query.where(Participant.status == state)
    if state == "waiting":
        return query.where(
            exists().where(
                InboundMessage.participant_id == Participant.id,
                InboundMessage.needs_reply.is_(True),
            )
        )
    if state == "flagged":
        return query.where(
            exists().where(Flag.participant_id == Participant.id, Flag.state != "resolved")
        )
    return query


def filtered(
    session: Session, viewer: Viewer, *, q: str = "", state: str = "", coach: str = ""
) -> Query:
    """The viewer's caseload, searched and filtered: a SELECT of (Participant, coach name)."""
    query: Query = (
        select(Participant, User.name.label("coach_name"))
        .outerjoin(User, Participant.coach_id == User.id)
        .where(caseload_clause(viewer, session))
    )
    query = _state(_search(query, q), state)
    if coach == NO_COACH:
        query = query.where(Participant.coach_id.is_(None))
    elif coach.isdigit():
        query = query.where(Participant.coach_id == int(coach))
    return query


def _ordered(query: Query, sort: str) -> Query:
    if sort == "recent":
        return query.order_by(last_contact_at().desc().nulls_last(), Participant.id)
    if sort == "quiet":
        return query.order_by(last_contact_at().asc().nulls_first(), Participant.id)
    if sort == "release":
        return query.order_by(Participant.release_date.desc(), Participant.id)
    return query.order_by(
        func.lower(Participant.first_name),
        func.lower(func.coalesce(Participant.last_name, "")),
        Participant.id,
    )


def list_participants(
    session: Session,
    viewer: Viewer,
    *,
    now: datetime,
    q: str = "",
    state: str = "",
    coach: str = "",
    sort: str = "name",
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> ListPage:
    query = filtered(session, viewer, q=q, state=state, coach=coach)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = max((total + page_size - 1) // page_size, 1)
    page = min(max(page, 1), pages)
    rows = session.execute(
        _ordered(query, sort).limit(page_size).offset((page - 1) * page_size)
    ).all()
    ids = [row.Participant.id for row in rows]
    last = last_messages(session, ids)
    flags = open_flags_by_severity(session, ids)
    waiting = set(
        session.scalars(
            select(InboundMessage.participant_id)
            .where(InboundMessage.participant_id.in_(ids), InboundMessage.needs_reply.is_(True))
            .distinct()
        )
    )
    result = []
    for row in rows:
        p: Participant = row.Participant
        today = now.astimezone(ZoneInfo(p.timezone)).date()
        result.append(
            ListRow(
                id=p.id,
                external_id=p.external_id,
                display_name=p.display_name,
                phone=p.phone,
                status=p.status,
                language=p.language,
                timezone=p.timezone,
                coach_name=row.coach_name,
                release_date=p.release_date,
                days_since_release=(today - p.release_date).days,
                last=last.get(p.id),
                flags=flags.get(p.id, {}),
                waiting=p.id in waiting,
            )
        )
    return ListPage(rows=result, total=total, page=page, pages=pages)


def last_messages(session: Session, participant_ids: list[int]) -> dict[int, LastMessage]:
    """The latest message either way of each of these people (a page of them)."""
    if not participant_ids:
        return {}
    last_in = (
        select(InboundMessage.id)
        .where(InboundMessage.participant_id == Participant.id)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    last_out = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.participant_id == Participant.id,
            OutboundMessage.status != "cancelled",
        )
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    pairs = session.execute(
        select(Participant.id, last_in.label("i"), last_out.label("o")).where(
            Participant.id.in_(participant_ids)
        )
    ).all()
    found: dict[int, LastMessage] = {}
    in_ids = [p.i for p in pairs if p.i is not None]
    out_ids = [p.o for p in pairs if p.o is not None]
    if in_ids:
        for pid, body, at in session.execute(
            select(
                InboundMessage.participant_id, InboundMessage.body, InboundMessage.received_at
            ).where(InboundMessage.id.in_(in_ids))
        ):
            if pid is not None:
                found[pid] = LastMessage("in", first_line(body), at)
    if out_ids:
        for pid, body, at in session.execute(
            select(
                OutboundMessage.participant_id, OutboundMessage.body, OutboundMessage.created_at
            ).where(OutboundMessage.id.in_(out_ids))
        ):
            if pid is None:
                continue
            current = found.get(pid)
            if current is None or at > current.at:
                found[pid] = LastMessage("out", first_line(body), at)
    return found


def open_flags_by_severity(
    session: Session, participant_ids: list[int]
) -> dict[int, dict[str, int]]:
    """{participant: {severity: open flags}}, most severe first."""
    if not participant_ids:
        return {}
    counts: dict[int, dict[str, int]] = {}
    for pid, severity, n in session.execute(
        select(Flag.participant_id, Flag.severity, func.count())
        .where(Flag.participant_id.in_(participant_ids), Flag.state != "resolved")
        .group_by(Flag.participant_id, Flag.severity)
    ):
        if pid is not None:
            counts.setdefault(pid, {})[severity] = int(n)
    order = list(reversed(SEVERITIES))
    return {
        pid: dict(sorted(by.items(), key=lambda kv: order.index(kv[0])))
        for pid, by in counts.items()
    }


def coach_filter_choices(session: Session, viewer: Viewer) -> list[tuple[str, str]]:
    """(value, label) for the coach filter: the coaches of the viewer's caseload."""
    names = session.execute(
        select(User.id, User.name)
        .where(User.id.in_(select(Participant.coach_id).where(caseload_clause(viewer, session))))
        .order_by(User.name)
    ).all()
    return [(str(uid), name) for uid, name in names]
