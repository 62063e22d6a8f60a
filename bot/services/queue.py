"""The flagged queue: unresolved flags in the viewer's caseload, urgent first, then high, then
oldest; each with the last message of the conversation, and counts by reason.

Built for the coach's home page and the JSON endpoint it polls; all filtering is in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import Flag, InboundMessage, OutboundMessage, Participant
from bot.services.caseload import Viewer, flag_clause
from bot.services.flags import SEVERITY_ORDER

QUEUE_LIMIT = 200
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
}


def reason_label(reason: str) -> str:
    return REASON_LABELS.get(reason, reason.replace("_", " ").capitalize())


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
            "url": self.url,
            "flag_url": f"/flags/{self.flag_id}",
        }


@dataclass(frozen=True)
class Queue:
    items: list[QueueItem]
    total: int
    counts: dict[str, int]

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
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


def _preview(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def load_queue(session: Session, viewer: Viewer, *, limit: int = QUEUE_LIMIT) -> Queue:
    unresolved = Flag.state != "resolved"
    # Correlated "latest message" lookups: one index probe each on
    # (participant_id, received_at) / (participant_id, created_at), whatever the table size.
    last_in = (
        select(InboundMessage.id)
        .where(InboundMessage.participant_id == Flag.participant_id)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    last_out = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.participant_id == Flag.participant_id,
            OutboundMessage.participant_id.is_not(None),
        )
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Flag,
            Participant.first_name,
            Participant.external_id,
            last_in.label("last_in"),
            last_out.label("last_out"),
        )
        .outerjoin(Participant, Flag.participant_id == Participant.id)
        .where(unresolved, flag_clause(viewer))
        .order_by(SEVERITY_ORDER, Flag.opened_at, Flag.id)
        .limit(limit)
    ).all()

    in_ids = [r.last_in for r in rows if r.last_in is not None]
    out_ids = [r.last_out for r in rows if r.last_out is not None]
    inbound = (
        {
            m.id: m
            for m in session.scalars(select(InboundMessage).where(InboundMessage.id.in_(in_ids)))
        }
        if in_ids
        else {}
    )
    outbound = (
        {
            m.id: m
            for m in session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(out_ids)))
        }
        if out_ids
        else {}
    )
    unknown_last = _last_from_unknown_senders(
        session, [r.Flag.sender_address for r in rows if r.Flag.participant_id is None]
    )

    items = []
    for row in rows:
        flag: Flag = row.Flag
        preview = direction = None
        preview_at = None
        got_in = inbound.get(row.last_in) if row.last_in else None
        got_out = outbound.get(row.last_out) if row.last_out else None
        if flag.participant_id is None and flag.sender_address:
            got_in = unknown_last.get(flag.sender_address)
        if got_in is not None and (got_out is None or got_in.received_at >= got_out.created_at):
            preview, direction, preview_at = _preview(got_in.body), "in", got_in.received_at
        elif got_out is not None:
            preview, direction, preview_at = _preview(got_out.body), "out", got_out.created_at
        if flag.participant_id is not None:
            label = f"{row.first_name} ({row.external_id})"
        else:
            label = f"Unknown number {_mask(flag.sender_address)}"
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
            )
        )

    counts_rows = session.execute(
        select(Flag.reason, func.count())
        .outerjoin(Participant, Flag.participant_id == Participant.id)
        .where(unresolved, flag_clause(viewer))
        .group_by(Flag.reason)
        .order_by(func.count().desc(), Flag.reason)
    ).all()
    counts = {reason: int(count) for reason, count in counts_rows}
    return Queue(items=items, total=sum(counts.values()), counts=counts)


def _last_from_unknown_senders(
    session: Session, addresses: list[str | None]
) -> dict[str, InboundMessage]:
    wanted = [a for a in addresses if a]
    if not wanted:
        return {}
    latest: dict[str, InboundMessage] = {}
    for message in session.scalars(
        select(InboundMessage)
        .where(InboundMessage.from_address.in_(wanted), InboundMessage.participant_id.is_(None))
        .order_by(InboundMessage.received_at)
    ):
        latest[message.from_address] = message
    return latest


def _mask(address: str | None) -> str:
    from bot.log import mask_phone

    return mask_phone(address)
