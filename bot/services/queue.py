"""The queue (`/`): urgent flags first, then the conversations waiting for a reply (oldest wait
first; bot.services.inbox), then the other flags, high before normal, oldest first; each flag
with the text that raised it or else the conversation's last message, and counts by reason.

Built for the coach's home page and the JSON endpoint it polls; all filtering is in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from bot.models import Flag, InboundMessage, OutboundMessage, Participant, User
from bot.services.caseload import Viewer, caseload_clause, sees_everyone
from bot.services.flags import SEVERITY_ORDER
from bot.services.inbox import Waiting, waiting_conversations, waiting_count

QUEUE_LIMIT = 200
S = TypeVar("S", bound=Select[*tuple[Any, ...]])
PREVIEW_CHARS = 140

REASON_LABELS = {
    "crisis": "Crisis words in a message",
    "no_reply": "No reply to a check-in",
    "unconfirmed_appointment": "Appointment not confirmed",
    "appointment_declined": "Can't make an appointment",
    "delivery_failed": "Text could not be delivered",
    "delivery_unknown": "Not sure a text was delivered",
    "opted_out": "Opted out of texts",
    "unknown_sender": "Text from an unknown number",
    "unanswered_text": "A text has waited too long for a reply",
    "whatsapp_template_missing": "WhatsApp messages need an approved template",
    "number_changed": "The number may belong to someone else now",
}


def reason_label(reason: str) -> str:
    return REASON_LABELS.get(reason, reason.replace("_", " ").capitalize())


@dataclass(frozen=True)
class Last:
    """The last message one way: its body and when."""

    body: str
    at: datetime


@dataclass(frozen=True)
class QueueItem:
    flag_id: int
    participant_id: int | None
    label: str
    reason: str
    severity: str
    state: str
    occurrences: int
    opened_at: datetime
    preview: str | None
    preview_direction: str | None  # "in" or "out"
    preview_at: datetime | None
    # The text that raised the flag is the preview (not whatever was said or sent since).
    preview_is_trigger: bool = False
    coach_name: str | None = None
    # When the person's oldest text waiting for a reply came in (None: nothing waits).
    waiting_since: datetime | None = None

    @property
    def urgent(self) -> bool:
        return self.severity == "urgent"

    @property
    def reason_label(self) -> str:
        return reason_label(self.reason)

    @property
    def url(self) -> str:
        if self.participant_id is not None:
            return f"/participants/{self.participant_id}#flag-{self.flag_id}"
        return f"/flags/{self.flag_id}"

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "flag_id": self.flag_id,
            "participant_id": self.participant_id,
            "label": self.label,
            "reason": self.reason,
            "reason_label": self.reason_label,
            "severity": self.severity,
            "state": self.state,
            "occurrences": self.occurrences,
            "opened_at": _iso(self.opened_at),
            "age": time_since(self.opened_at, now),
            "preview": self.preview,
            "preview_direction": self.preview_direction,
            "preview_at": _iso(self.preview_at) if self.preview_at else None,
            "preview_is_trigger": self.preview_is_trigger,
            "coach": self.coach_name,
            "urgent": self.urgent,
            "waiting_since": _iso(self.waiting_since) if self.waiting_since else None,
            "waiting_age": time_since(self.waiting_since, now) if self.waiting_since else None,
            "waiting_label": waited(self.waiting_since, now) if self.waiting_since else None,
            "url": self.url,
            "flag_url": f"/flags/{self.flag_id}",
        }


@dataclass(frozen=True)
class Queue:
    items: list[QueueItem]  # every flag shown, urgent first
    total: int
    counts: dict[str, int]
    # Conversations waiting for a reply, oldest wait first; a person whose urgent card is shown
    # is not listed again (the card says their text waits).
    waiting: list[Waiting] = field(default_factory=list)
    shows_coach: bool = False
    waiting_total: int = 0  # conversations waiting, urgent cards' people included

    @property
    def urgent(self) -> list[QueueItem]:
        return [item for item in self.items if item.urgent]

    @property
    def others(self) -> list[QueueItem]:
        return [item for item in self.items if not item.urgent]

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "waiting": [
                {**w.as_json(now, time_since(w.since, now)), "waiting_label": waited(w.since, now)}
                for w in self.waiting
            ],
            "waiting_count": self.waiting_total,
            "shows_coach": self.shows_coach,
            "total": self.total,
            "shown": len(self.items),
            "counts": [
                {"reason": reason, "label": reason_label(reason), "count": count}
                for reason, count in self.counts.items()
            ],
            "items": [item.as_json(now) for item in self.items],
            "generated_at": _iso(now),
        }


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def time_since(then: datetime, now: datetime) -> str:
    """Plain-language age: "just now", "12 min", "3 h", "2 days"."""
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} h ago"
    days = hours // 24
    return "1 day ago" if days == 1 else f"{days} days ago"


def waited(since: datetime, now: datetime) -> str:
    """The waiting badge: "new" for a text under a minute old, else "waiting 3 h"."""
    age = time_since(since, now)
    return "new" if age == "just now" else "waiting " + age.removesuffix(" ago")


def _preview(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def load_queue(session: Session, viewer: Viewer, *, limit: int = QUEUE_LIMIT) -> Queue:
    # The page of flag ids first, sorted and limited without touching participants when the
    # viewer sees everyone (a join before the sort would read all 100,000 of them); then the
    # names for just that page.
    caseload = None if sees_everyone(viewer) else caseload_clause(viewer, session)
    page_ids = list(
        session.scalars(
            _visible_unresolved(select(Flag.id), caseload)
            .order_by(SEVERITY_ORDER, Flag.opened_at, Flag.id)
            .limit(limit)
        )
    )
    position = {flag_id: n for n, flag_id in enumerate(page_ids)}
    rows = sorted(
        session.execute(
            select(Flag, Participant.first_name, Participant.external_id, User.name.label("coach"))
            .outerjoin(Participant, Flag.participant_id == Participant.id)
            .outerjoin(User, User.id == Participant.coach_id)
            .where(Flag.id.in_(page_ids))
        ).all(),
        key=lambda row: position[row.Flag.id],
    )
    waiting = waiting_conversations(session, viewer)
    waiting_since = {w.participant_id: w.since for w in waiting if w.participant_id is not None}
    triggers = _triggers(session, [r.Flag.trigger_message_id for r in rows])
    inbound, outbound = _last_messages(
        session, {r.Flag.participant_id for r in rows if r.Flag.participant_id is not None}
    )
    unknown_last = _last_from_unknown_senders(
        session, [r.Flag.sender_address for r in rows if r.Flag.participant_id is None]
    )

    items = []
    for row in rows:
        flag: Flag = row.Flag
        preview = direction = None
        preview_at = None
        if flag.participant_id is not None:
            got_in = inbound.get(flag.participant_id)
            got_out = outbound.get(flag.participant_id)
            label = f"{row.first_name} ({row.external_id})"
        elif flag.sender_address is None:  # a program-level flag
            got_in = got_out = None
            label = "The program"
        else:
            got_in = unknown_last.get(flag.sender_address or "")
            got_out = None
            label = f"Unknown number {_mask(flag.sender_address)}"
        trigger = triggers.get(flag.trigger_message_id or 0)
        if trigger is not None:
            preview, direction, preview_at = _preview(trigger.body), "in", trigger.at
        elif got_in is not None and (got_out is None or got_in.at >= got_out.at):
            preview, direction, preview_at = _preview(got_in.body), "in", got_in.at
        elif got_out is not None:
            preview, direction, preview_at = _preview(got_out.body), "out", got_out.at
        items.append(
            QueueItem(
                flag_id=flag.id,
                participant_id=flag.participant_id,
                label=label,
                reason=flag.reason,
                severity=flag.severity,
                state=flag.state,
                occurrences=flag.occurrences,
                opened_at=flag.opened_at,
                preview=preview,
                preview_direction=direction,
                preview_at=preview_at,
                preview_is_trigger=trigger is not None,
                coach_name=row.coach,
                waiting_since=waiting_since.get(flag.participant_id)
                if flag.participant_id is not None
                else None,
            )
        )
    on_urgent_cards = {i.participant_id for i in items if i.urgent and i.participant_id}

    counts_rows = session.execute(
        _visible_unresolved(select(Flag.reason, func.count()), caseload)
        .group_by(Flag.reason)
        .order_by(func.count().desc(), Flag.reason)
    ).all()
    counts = {reason: int(count) for reason, count in counts_rows}
    return Queue(
        items=items,
        total=sum(counts.values()),
        counts=counts,
        waiting=[w for w in waiting if w.participant_id not in on_urgent_cards],
        shows_coach=sees_everyone(viewer),
        waiting_total=waiting_count(session, viewer),
    )


def _triggers(session: Session, message_ids: list[int | None]) -> dict[int, Last]:
    """The texts that raised the flags on the page."""
    wanted = [i for i in message_ids if i is not None]
    if not wanted:
        return {}
    return {
        message_id: Last(body, at)
        for message_id, body, at in session.execute(
            select(InboundMessage.id, InboundMessage.body, InboundMessage.received_at).where(
                InboundMessage.id.in_(wanted)
            )
        )
    }


def _visible_unresolved(query: S, caseload: ColumnElement[bool] | None) -> S:
    """Restrict a query on `Flag` to unresolved flags the viewer may see (caseload in SQL);
    `caseload` None means everyone (no join with participants needed)."""
    query = query.where(Flag.state != "resolved")
    if caseload is None:
        return query
    return query.join(Participant, Flag.participant_id == Participant.id).where(caseload)


def _last_messages(
    session: Session, participant_ids: set[int]
) -> tuple[dict[int, Last], dict[int, Last]]:
    """The latest inbound and outbound message of each participant, for the page of flags
    only: one correlated index probe each on (participant_id, received_at) and
    (participant_id, created_at), whatever the size of the message tables."""
    if not participant_ids:
        return {}, {}
    last_in = (
        select(InboundMessage.id)
        .where(InboundMessage.participant_id == Participant.id)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    last_out = (
        select(OutboundMessage.id)
        .where(OutboundMessage.participant_id == Participant.id)
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    pairs = session.execute(
        select(Participant.id, last_in.label("last_in"), last_out.label("last_out")).where(
            Participant.id.in_(participant_ids)
        )
    ).all()
    in_ids = [p.last_in for p in pairs if p.last_in is not None]
    out_ids = [p.last_out for p in pairs if p.last_out is not None]
    inbound: dict[int, Last] = {}
    outbound: dict[int, Last] = {}
    if in_ids:
        for pid, body, at in session.execute(
            select(
                InboundMessage.participant_id, InboundMessage.body, InboundMessage.received_at
            ).where(InboundMessage.id.in_(in_ids))
        ):
            if pid is not None:
                inbound[pid] = Last(body, at)
    if out_ids:
        for pid, body, at in session.execute(
            select(
                OutboundMessage.participant_id, OutboundMessage.body, OutboundMessage.created_at
            ).where(OutboundMessage.id.in_(out_ids))
        ):
            if pid is not None:
                outbound[pid] = Last(body, at)
    return inbound, outbound


def _last_from_unknown_senders(session: Session, addresses: list[str | None]) -> dict[str, Last]:
    wanted = [a for a in addresses if a]
    if not wanted:
        return {}
    latest: dict[str, Last] = {}
    for address, body, at in session.execute(
        select(InboundMessage.from_address, InboundMessage.body, InboundMessage.received_at)
        .where(InboundMessage.from_address.in_(wanted), InboundMessage.participant_id.is_(None))
        .order_by(InboundMessage.received_at)
    ):
        latest[address] = Last(body, at)
    return latest


def _mask(address: str | None) -> str:
    from bot.log import mask_phone

    return mask_phone(address)
