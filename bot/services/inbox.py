"""The inbox: every text a person must answer waits until one does (DESIGN.md §2 "Inbox").

A text waits from the moment it is stored (`inbound_messages.needs_reply` defaults to true, so
a text whose processing failed waits too: a coach should read it). Once it is understood,
`settle` ends the wait only when automation fully answered it:

- a carrier keyword (STOP and the like alone: Twilio itself confirms the opt-out),
- START (the person is back; the confirmation says all there is to say),
- a YES or NO matched to an appointment (the reminder's question is answered),

and never for someone who had an open flag when the text came in (other than an information
flag): that person's every word is for their coach. HELP/INFO/AYUDA, crisis texts, anything free
and texts from unknown numbers all wait.

A staff reply or "no reply needed" ends the wait of all the sender's waiting texts (a
participant's, or an unknown number's), recording who, when and how, and resolves their
`unanswered_text` flag (raised by the sweep, scheduler/sweep.py, when a text waits too long).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from bot.log import mask_phone
from bot.models import Flag, InboundMessage, Participant, User
from bot.services.caseload import Viewer, caseload_clause, sees_everyone
from bot.services.flags import resolve_flag
from bot.services.inbound_store import Incoming

ANSWER_KINDS = ("reply", "no_reply_needed")
# Intents that automation answers in full (with `carrier` for STOP: only the bare keyword).
_START = "start"
_STOP = "stop"
_APPOINTMENT_ANSWERS = ("yes", "no")
WAITING_LIMIT = 200
FIRST_LINE_CHARS = 140


def _had_open_flag(message: Incoming) -> ColumnElement[bool]:
    """Whether the sender had a flag open (not merely information) when the text came in. A
    flag this very text resolved (a reply resolves `no_reply`) still counts; one it raised does
    not (STOP's `opted_out` is information anyway)."""
    received = message.received_at
    subject = (
        Flag.participant_id == message.participant_id
        if message.participant_id is not None
        else and_(Flag.participant_id.is_(None), Flag.sender_address == message.from_address)
    )
    return exists().where(
        subject,
        Flag.severity != "info",
        Flag.opened_at < received,
        or_(Flag.resolved_at.is_(None), Flag.resolved_at >= received),
    )


def fully_answered(intent: str, *, carrier: bool, answered_appointment: bool) -> bool:
    """Whether automation said all there is to say to a text understood as `intent` (see the
    module's rules); `answered_appointment` when a YES or NO answered a reminded appointment."""
    if intent == _START or (intent == _STOP and carrier):
        return True
    return intent in _APPOINTMENT_ANSWERS and answered_appointment


def settle(
    session: Session,
    message: Incoming,
    intent: str,
    *,
    carrier: bool,
    answered_appointment: bool,
    now: datetime,
) -> bool:
    """Called by inbound processing once the text is understood: ends the wait when automation
    fully answered it. Returns whether the text still waits. Most texts wait (they were stored
    waiting), and cost no statement here."""
    if not fully_answered(intent, carrier=carrier, answered_appointment=answered_appointment):
        return True
    # One statement: the wait ends unless the sender had a flag open.
    ended = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message.id, ~_had_open_flag(message))
        .values(needs_reply=False, answer_kind="automatic", answered_at=now)
        .execution_options(synchronize_session=False)
    )
    return not getattr(ended, "rowcount", 0)


@dataclass(frozen=True)
class Ended:
    texts: int  # how many texts stopped waiting
    flag_resolved: bool  # whether an `unanswered_text` flag was resolved


def end_wait(
    session: Session,
    *,
    kind: str,
    user_id: int | None,
    now: datetime,
    participant_id: int | None = None,
    sender_address: str | None = None,
) -> Ended:
    """A staff member replied (`kind` "reply") or said no reply is needed: every waiting text
    of this participant (or, with `sender_address`, of this unknown number) stops waiting, with
    who and when, and the participant's `unanswered_text` flag is resolved."""
    if kind not in ANSWER_KINDS:
        raise ValueError(f"kind must be one of {ANSWER_KINDS}")
    if (participant_id is None) == (sender_address is None):
        raise ValueError("give a participant or an unknown sender's address")
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.needs_reply.is_(True), _sender_clause(participant_id, sender_address))
        .values(needs_reply=False, answered_at=now, answered_by_user_id=user_id, answer_kind=kind)
        .execution_options(synchronize_session="fetch")
    )
    texts = max(int(getattr(result, "rowcount", 0) or 0), 0)
    resolved = False
    if participant_id is not None:
        flag = session.scalars(
            select(Flag).where(
                Flag.participant_id == participant_id,
                Flag.reason == "unanswered_text",
                Flag.state != "resolved",
            )
        ).first()
        if flag is not None:
            resolve_flag(
                session,
                flag,
                outcome="reached" if kind == "reply" else "no_action_needed",
                note="Replied." if kind == "reply" else "Marked: no reply needed.",
                now=now,
                user_id=user_id,
            )
            resolved = True
    return Ended(texts=texts, flag_resolved=resolved)


def _sender_clause(participant_id: int | None, sender_address: str | None) -> ColumnElement[bool]:
    if participant_id is not None:
        return InboundMessage.participant_id == participant_id
    return and_(
        InboundMessage.participant_id.is_(None), InboundMessage.from_address == sender_address
    )


def is_waiting(session: Session, participant_id: int) -> datetime | None:
    """When the participant's oldest waiting text came in, or None when nothing waits."""
    return session.scalar(
        select(func.min(InboundMessage.received_at)).where(
            InboundMessage.participant_id == participant_id, InboundMessage.needs_reply.is_(True)
        )
    )


def texted_since(session: Session, participant_id: int, since: datetime) -> bool:
    """Whether the participant texted at or after `since` (a staff reply then goes at once)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    InboundMessage.participant_id == participant_id,
                    InboundMessage.received_at >= since,
                )
            )
        )
    )


# --- the queue's view of the inbox ---------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """One conversation waiting for a reply: a participant's, or an unknown number's."""

    participant_id: int | None
    label: str
    coach_name: str | None
    first_line: str
    since: datetime  # when its oldest waiting text came in
    texts: int
    message_id: int  # the oldest waiting text (the "no reply needed" button names it)
    sender_masked: str | None = None
    unknown_flag_id: int | None = None

    @property
    def url(self) -> str:
        if self.participant_id is not None:
            return f"/participants/{self.participant_id}#thread-end"
        # An unknown number's conversation (bot.web.unknown), found through one of its texts.
        return f"/unknown/{self.message_id}"

    def as_json(self, now: datetime, age: str) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "label": self.label,
            "coach": self.coach_name,
            "first_line": self.first_line,
            "since": self.since.isoformat().replace("+00:00", "Z"),
            "age": age,
            "texts": self.texts,
            "message_id": self.message_id,
            "url": self.url,
        }


def first_line(body: str) -> str:
    line = next((part.strip() for part in body.splitlines() if part.strip()), "")
    line = " ".join(line.split())
    return line if len(line) <= FIRST_LINE_CHARS else line[: FIRST_LINE_CHARS - 1] + "…"


def _visible_waiting(viewer: Viewer, session: Session) -> ColumnElement[bool]:
    """Waiting texts the viewer may see: their caseload's, and unknown numbers' for those who
    see everyone."""
    if sees_everyone(viewer):
        return InboundMessage.needs_reply.is_(True)
    return and_(
        InboundMessage.needs_reply.is_(True),
        InboundMessage.participant_id.in_(
            select(Participant.id).where(caseload_clause(viewer, session))
        ),
    )


def waiting_count(session: Session, viewer: Viewer) -> int:
    """How many conversations wait for a reply (the navigation's number)."""
    # A participant is one conversation; an unknown number is another.
    known = session.scalar(
        select(func.count(func.distinct(InboundMessage.participant_id))).where(
            _visible_waiting(viewer, session), InboundMessage.participant_id.is_not(None)
        )
    )
    unknown = 0
    if sees_everyone(viewer):
        unknown = (
            session.scalar(
                select(func.count(func.distinct(InboundMessage.from_address))).where(
                    InboundMessage.needs_reply.is_(True), InboundMessage.participant_id.is_(None)
                )
            )
            or 0
        )
    return int(known or 0) + int(unknown)


def waiting_conversations(
    session: Session, viewer: Viewer, *, limit: int = WAITING_LIMIT
) -> list[Waiting]:
    """The conversations waiting for a reply that the viewer may see, oldest wait first."""
    visible = _visible_waiting(viewer, session)
    known: list[Any] = list(
        session.execute(
            select(
                InboundMessage.participant_id,
                func.min(InboundMessage.received_at).label("since"),
                func.count().label("texts"),
            )
            .where(visible, InboundMessage.participant_id.is_not(None))
            .group_by(InboundMessage.participant_id)
            .order_by(func.min(InboundMessage.received_at), InboundMessage.participant_id)
            .limit(limit)
        ).all()
    )
    unknown: list[Any] = []
    if sees_everyone(viewer):
        unknown = list(
            session.execute(
                select(
                    InboundMessage.from_address,
                    func.min(InboundMessage.received_at).label("since"),
                    func.count().label("texts"),
                )
                .where(
                    InboundMessage.needs_reply.is_(True), InboundMessage.participant_id.is_(None)
                )
                .group_by(InboundMessage.from_address)
                .order_by(func.min(InboundMessage.received_at))
                .limit(limit)
            ).all()
        )
    people = {
        row.id: row
        for row in session.execute(
            select(Participant.id, Participant.first_name, Participant.external_id, User.name)
            .outerjoin(User, User.id == Participant.coach_id)
            .where(Participant.id.in_([r.participant_id for r in known]))
        )
    }
    oldest = _oldest_texts(session, known, unknown)
    unknown_flags = _unknown_sender_flags(session, [r.from_address for r in unknown])
    items: list[Waiting] = []
    for row in known:
        person = people.get(row.participant_id)
        if person is None:
            continue
        message_id, body = oldest[("p", str(row.participant_id))]
        items.append(
            Waiting(
                participant_id=row.participant_id,
                label=f"{person.first_name} ({person.external_id})",
                coach_name=person.name,
                first_line=first_line(body),
                since=row.since,
                texts=int(row.texts),
                message_id=message_id,
            )
        )
    for row in unknown:
        message_id, body = oldest[("u", row.from_address)]
        masked = mask_phone(row.from_address)
        items.append(
            Waiting(
                participant_id=None,
                label=f"Unknown number {masked}",
                coach_name=None,
                first_line=first_line(body),
                since=row.since,
                texts=int(row.texts),
                message_id=message_id,
                sender_masked=masked,
                unknown_flag_id=unknown_flags.get(row.from_address),
            )
        )
    items.sort(key=lambda item: (item.since, item.message_id))
    return items[:limit]


def _oldest_texts(
    session: Session, known: list[Any], unknown: list[Any]
) -> dict[tuple[str, str], tuple[int, str]]:
    """(id, body) of the oldest waiting text of each conversation on the page."""
    found: dict[tuple[str, str], tuple[int, str]] = {}
    if known:
        for pid, message_id, body in session.execute(
            select(InboundMessage.participant_id, InboundMessage.id, InboundMessage.body)
            .where(
                InboundMessage.needs_reply.is_(True),
                InboundMessage.participant_id.in_([r.participant_id for r in known]),
            )
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        ):
            found[("p", str(pid))] = (message_id, body)  # the last one written is the oldest
    if unknown:
        for address, message_id, body in session.execute(
            select(InboundMessage.from_address, InboundMessage.id, InboundMessage.body)
            .where(
                InboundMessage.needs_reply.is_(True),
                InboundMessage.participant_id.is_(None),
                InboundMessage.from_address.in_([r.from_address for r in unknown]),
            )
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        ):
            found[("u", address)] = (message_id, body)
    return found


def _unknown_sender_flags(session: Session, addresses: list[str]) -> dict[str, int]:
    if not addresses:
        return {}
    return {
        address: flag_id
        for address, flag_id in session.execute(
            select(Flag.sender_address, Flag.id).where(
                Flag.participant_id.is_(None),
                Flag.sender_address.in_(addresses),
                Flag.state != "resolved",
            )
        )
        if address is not None
    }
