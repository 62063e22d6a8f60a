"""Unknown numbers are not a dead end (issue 15.7). Without Flask.

A text from a number no participant has is stored with `participant_id` NULL, raises one
`unknown_sender` flag per number and waits in the inbox for a coordinator (bot.services.inbox).
Here a coordinator:

- reads that number's conversation (its texts, and what was sent back to it),
- replies: an outbox row with `participant_id` NULL and purpose `coach_reply` (a staff reply,
  so it takes the urgent lane like a reply to a participant), at once and at any hour (they
  texted us; a person chose to answer), ending the wait of that number's texts; never to a
  number whose last word was STOP,
- enrols the number (bot.services.participants_editing.create_participant, then `adopt`), or
- links it to an existing participant whose number changed (`link_to_participant`): the old
  number is kept in `participant_phone_history`, the change is audited without the numbers.

Either way the number's texts and the replies to it become that participant's (their waiting
texts wait in the participant's conversation now) and the open `unknown_sender` flag is
resolved with a note saying who the number turned out to be. The caller commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.log import mask_phone
from bot.models import Flag, InboundMessage, OutboundMessage, Participant
from bot.phones import split_channel_address
from bot.services import inbox
from bot.services.audit import record
from bot.services.coach_reply import SensitiveWords
from bot.services.conversation import STATUS_LABELS, ChangeError, ThreadEntry, clean_reply
from bot.services.flags import resolve_flag
from bot.services.inbound_store import sender_phone
from bot.services.outbox import enqueue
from bot.services.participants_editing import change_phone, request_replan
from bot.services.settings_editing import Planner
from messages.sensitive import find_sensitive_terms

THREAD_LIMIT = 200


@dataclass(frozen=True)
class UnknownNumber:
    """An unknown number, found through one of its texts."""

    address: str  # as Twilio gave it: `+1…` or `whatsapp:+1…`
    phone: str | None  # E.164, or None when the sender is not a phone number
    channel: str
    masked: str


def from_message(session: Session, message_id: int) -> tuple[UnknownNumber | None, int | None]:
    """The unknown number that sent inbound message `message_id`; or, when that text belongs
    to a participant (by now: enrolled or linked), (None, their id); (None, None) when there
    is no such text."""
    message = session.get(InboundMessage, message_id)
    if message is None:
        return None, None
    if message.participant_id is not None:
        return None, message.participant_id
    channel, _ = split_channel_address(message.from_address)
    return (
        UnknownNumber(
            address=message.from_address,
            phone=sender_phone(message.from_address),
            channel=channel,
            masked=mask_phone(message.from_address),
        ),
        None,
    )


def thread(session: Session, number: UnknownNumber) -> list[ThreadEntry]:
    """The number's texts and what was sent back to it, oldest first (the last THREAD_LIMIT)."""
    inbound = session.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.participant_id.is_(None),
            InboundMessage.from_address == number.address,
        )
        .order_by(InboundMessage.received_at.desc())
        .limit(THREAD_LIMIT)
    ).all()
    outbound = session.scalars(
        select(OutboundMessage)
        .where(
            OutboundMessage.participant_id.is_(None),
            OutboundMessage.user_id.is_(None),
            OutboundMessage.to_address == number.address,
        )
        .order_by(OutboundMessage.created_at.desc())
        .limit(THREAD_LIMIT)
    ).all()
    entries = [ThreadEntry("in", m.received_at, m.body) for m in inbound] + [
        ThreadEntry(
            "out",
            m.sent_at or m.created_at,
            m.body,
            status=m.status,
            status_label=STATUS_LABELS.get(m.status, m.status),
            error_code=m.error_code,
            purpose=m.purpose,
            segments=m.segments,
            sent_by=m.created_by_id,
        )
        for m in outbound
    ]
    entries.sort(key=lambda e: (e.at, e.direction == "out"))
    return entries[-THREAD_LIMIT:]


def waiting_since(session: Session, number: UnknownNumber) -> datetime | None:
    """When the number's oldest text still waiting for a reply came in."""
    return min(
        (
            at
            for at in session.scalars(
                select(InboundMessage.received_at).where(
                    InboundMessage.participant_id.is_(None),
                    InboundMessage.from_address == number.address,
                    InboundMessage.needs_reply.is_(True),
                )
            )
        ),
        default=None,
    )


def open_flag(session: Session, number: UnknownNumber) -> Flag | None:
    return session.scalars(
        select(Flag).where(
            Flag.participant_id.is_(None),
            Flag.sender_address == number.address,
            Flag.reason == "unknown_sender",
            Flag.state != "resolved",
        )
    ).first()


def said_stop(session: Session, number: UnknownNumber) -> bool:
    """Whether the number's last STOP or START was a STOP (then nothing may be sent to it)."""
    last = session.scalar(
        select(InboundMessage.intent)
        .where(
            InboundMessage.from_address == number.address,
            InboundMessage.participant_id.is_(None),
            InboundMessage.intent.in_(("stop", "start")),
        )
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(1)
    )
    return last == "stop"


def send_reply(
    session: Session,
    number: UnknownNumber,
    *,
    body: str,
    staff_user_id: int,
    now: datetime,
    reply_key: str = "",
    may_override: bool = False,
    send_anyway: bool = False,
) -> OutboundMessage:
    """Queue a staff member's reply to an unknown number, at once (once per reply key), end
    the wait of its texts and audit it. ChangeError (shown next to the box, the text kept)
    for a number that said STOP, an empty or long text, or sensitive words."""
    if said_stop(session, number):
        raise ChangeError(
            "This number texted STOP, so nothing can be sent to it. "
            "It can text START to receive texts again."
        )
    text = clean_reply(body)
    sensitive = find_sensitive_terms(text)
    if sensitive and not (may_override and send_anyway):
        raise SensitiveWords(sensitive)
    key = reply_key.strip()[:40] or secrets.token_urlsafe(12)
    result = enqueue(
        session,
        idempotency_key=f"unknown_reply:{key}",
        purpose="coach_reply",
        channel=number.channel,
        to_address=number.address,
        body=text,
        now=now,
        send_after=now,
        created_by_id=staff_user_id,
        # They texted us and a person answers: it goes at once, at any hour.
        ignore_quiet_hours=True,
    )
    if result.created:
        answered = inbox.end_wait(
            session, kind="reply", user_id=staff_user_id, now=now, sender_address=number.address
        ).texts
        record(
            session,
            now=now,
            action="unknown.reply",
            actor="dashboard",
            user_id=staff_user_id,
            detail={
                "sender": number.masked,
                "outbound_message_id": result.message.id,
                "texts_answered": answered,
            },
        )
    return result.message


@dataclass(frozen=True)
class Adopted:
    texts: int  # the number's texts now in the participant's conversation
    replies: int  # what was sent to the number, now in it too
    flag_resolved: bool


def adopt(
    session: Session,
    number: UnknownNumber,
    participant: Participant,
    *,
    now: datetime,
    user_id: int | None,
    how: str,
) -> Adopted:
    """The number turned out to be `participant` (`how`: "enrolled" or "linked"): its texts and
    the replies to it become theirs, and its `unknown_sender` flag is resolved."""
    texts = session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.participant_id.is_(None),
            InboundMessage.from_address == number.address,
        )
        .values(participant_id=participant.id)
        .execution_options(synchronize_session=False)
    )
    replies = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.participant_id.is_(None),
            OutboundMessage.user_id.is_(None),
            OutboundMessage.to_address == number.address,
        )
        .values(participant_id=participant.id)
        .execution_options(synchronize_session=False)
    )
    flag = open_flag(session, number)
    if flag is not None:
        word = "Enrolled as" if how == "enrolled" else "Linked to"
        resolve_flag(
            session,
            flag,
            outcome="reached",
            note=f"{word} {participant.label}: the number's texts are in their conversation.",
            now=now,
            user_id=user_id,
        )
    adopted = Adopted(
        texts=int(getattr(texts, "rowcount", 0) or 0),
        replies=int(getattr(replies, "rowcount", 0) or 0),
        flag_resolved=flag is not None,
    )
    record(
        session,
        now=now,
        action=f"unknown.{how}",
        actor="dashboard",
        user_id=user_id,
        participant_id=participant.id,
        detail={
            "sender": number.masked,
            "texts": adopted.texts,
            "replies": adopted.replies,
            "flag_resolved": adopted.flag_resolved,
        },
    )
    session.flush()
    return adopted


def find_participant(session: Session, reference: str) -> Participant | None:
    """A participant by program ID (`P-00012`) or internal id."""
    reference = reference.strip()
    if not reference:
        return None
    found = session.scalars(select(Participant).where(Participant.external_id == reference)).first()
    if found is None and reference.isdigit():
        found = session.get(Participant, int(reference))
    return found


def link_to_participant(
    session: Session,
    number: UnknownNumber,
    participant: Participant,
    *,
    now: datetime,
    user_id: int | None,
    planner: Planner | None = None,
) -> Adopted:
    """The participant's number changed to this one: their old number goes to the phone
    history, texts not yet sent go to the new number (on the channel it texted on), their
    plan is made again, and the number's texts become theirs. ChangeError when the sender is
    not a phone number, or the number already belongs to someone (it would not be unknown)."""
    if number.phone is None:
        raise ChangeError("This sender is not a phone number, so it cannot be a participant's.")
    owner = session.scalar(
        select(Participant.external_id).where(
            Participant.phone == number.phone, Participant.id != participant.id
        )
    )
    if owner is not None:
        raise ChangeError(f"The number already belongs to participant {owner!r}.")
    change_phone(
        session,
        participant,
        number.phone,
        kind="linked_unknown_number",
        now=now,
        user_id=user_id,
        channel=number.channel,
    )
    adopted = adopt(session, number, participant, now=now, user_id=user_id, how="linked")
    request_replan(session, participant, now, planner)
    return adopted
