"""Numbers that change hands: people coming home change phones often, and a number that now
belongs to someone else must not keep receiving check-ins with a coach's name and a court date.

- `number_changed` (high) is raised by a reply such as "wrong number", "who is this", "número
  equivocado" (messages.keywords Intent.WRONG_NUMBER: `on_wrong_number_reply`) and by two
  delivery failures in a row with 30003, 30005 or 30006 to a number that had texts delivered
  before and none after them (`after_delivery_failure`, from the status callbacks and the
  send's own answer);
- while it is open nothing automated goes to that person (bot.services.sendability: the hold
  `number_changed`); a staff reply may, after a warning in the reply form;
- it resolves when a coordinator confirms the number (`confirm_number`, audited) or changes it
  (`change_number`): the change goes through bot.services.participants_editing.change_phone,
  so the old number stays in the one phone history (`participant_phone_history`), texts not
  yet sent go to the new number, and the change is audited;
- a delivered text to a number resolves its open `delivery_failed` flag (`on_delivered`),
  unless a text sent after it has failed.

Status callbacks come in the order carriers answer, not the order texts were sent: "in a row",
"before" and "after" are always in the order sent (`sent_in_order`), so a late callback
judges the same as one that came in time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.bulk import in_ids
from bot.log import mask_phone
from bot.models import Flag, OutboundMessage, Participant
from bot.phones import normalize_phone
from bot.services import participants_editing
from bot.services.audit import record
from bot.services.flags import raise_flag, resolve_flag

REASON = "number_changed"
# Carrier answers that a number is unreachable, unknown or no longer in service.
CHANGED_HANDS_CODES = frozenset({30003, 30005, 30006})
_FAILED = ("undelivered", "failed")
# A text Twilio took (or refused at once) and so has, or will have, an outcome.
_HANDED = ("queued", "sent", "delivered", "undelivered", "failed", "unknown")


class NumberError(ValueError):
    """A number change the form cannot make, with a sentence for the coordinator."""


def open_flag(session: Session, participant_id: int) -> Flag | None:
    return session.scalars(
        select(Flag).where(
            Flag.participant_id == participant_id, Flag.reason == REASON, Flag.state != "resolved"
        )
    ).first()


def number_changed_open(
    participant_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> ColumnElement[bool]:
    """Whether that participant has an unresolved number_changed flag (one index probe)."""
    return exists().where(
        Flag.participant_id == participant_id, Flag.reason == REASON, Flag.state != "resolved"
    )


def with_number_changed(session: Session, participant_ids: Iterable[int]) -> set[int]:
    """Those of these participants whose number may have changed hands."""
    ids = set(participant_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Flag.participant_id).where(
                in_ids(session, Flag.participant_id, ids),
                Flag.reason == REASON,
                Flag.state != "resolved",
            )
        )
    )


def on_wrong_number_reply(
    session: Session, participant: Participant, inbound_message_id: int, now: datetime
) -> None:
    raise_flag(
        session,
        reason=REASON,
        now=now,
        participant_id=participant.id,
        detail={"why": "reply", "inbound_message_id": inbound_message_id},
    )


@dataclass(frozen=True)
class SentText:
    """One text in a person's history of texts sent: where it went and what became of it."""

    id: int
    to_address: str
    status: str
    error_code: int | None

    def failed_changed_hands(self) -> bool:
        return self.status in _FAILED and self.error_code in CHANGED_HANDS_CODES


def sent_in_order(session: Session, participant_id: int) -> list[SentText]:
    """The texts to this participant that reached Twilio (it took them, or refused them at
    once), in the order they were sent, whatever order their status callbacks came in.

    The order is the moment each was handed to Twilio (`handed_at`, the sender's clock as the
    pass goes on), else when it was recorded as sent (a pass records every text it sends with
    its own start time), then the row id. Not the id alone: a row made early can go late (a
    check-in held for the morning, a retry), and not the order of callbacks: Twilio sends them
    as the carriers answer."""
    m = OutboundMessage
    rows = session.execute(
        select(
            m.id,
            m.to_address,
            m.status,
            m.error_code,
            func.coalesce(m.handed_at, m.sent_at, m.status_updated_at, m.created_at).label("at"),
        ).where(
            m.participant_id == participant_id,
            m.status.in_(_HANDED),
            or_(m.provider_sid.is_not(None), m.status == "failed"),
        )
    ).all()
    return [
        SentText(r.id, r.to_address, r.status, r.error_code)
        for r in sorted(rows, key=lambda r: (r.at, r.id))
    ]


def _position(history: list[SentText], message_id: int) -> int | None:
    return next((i for i, sent in enumerate(history) if sent.id == message_id), None)


def after_delivery_failure(
    session: Session, message: OutboundMessage, code: int, now: datetime
) -> bool:
    """Raise `number_changed` when this failure and the text sent just before or just after it
    to the same number both failed with 30003/30005/30006, a text to that number was delivered
    before them, and none sent after them has been delivered (a later delivery shows the number
    still reaches the person). "Before", "after" and "in a row" are in the order the texts were
    sent (`sent_in_order`): a callback that arrives late completes or breaks a run as if it had
    come in time, and a text between two failures whose outcome is not known yet keeps them
    from being in a row until it is. Returns whether raised."""
    if code not in CHANGED_HANDS_CODES or message.participant_id is None:
        return False
    history = [
        sent
        for sent in sent_in_order(session, message.participant_id)
        if sent.to_address == message.to_address
    ]
    at = _position(history, message.id)
    if at is None:
        return False
    for first in (at - 1, at):
        if first < 0 or first + 1 >= len(history):
            continue
        pair = history[first : first + 2]
        if not all(sent.failed_changed_hands() for sent in pair):
            continue
        if not any(sent.status == "delivered" for sent in history[:first]):
            continue
        if any(sent.status == "delivered" for sent in history[first + 2 :]):
            continue
        raise_flag(
            session,
            reason=REASON,
            now=now,
            participant_id=message.participant_id,
            detail={
                "why": "delivery_failures",
                "error_code": code,
                "outbound_message_id": message.id,
            },
        )
        return True
    return False


def delivered_after(session: Session, message: OutboundMessage) -> bool:
    """Whether a text to this participant sent after `message` has been delivered."""
    return _after(session, message, ("delivered",))


def _after(session: Session, message: OutboundMessage, statuses: tuple[str, ...]) -> bool:
    if message.participant_id is None:
        return False
    history = sent_in_order(session, message.participant_id)
    at = _position(history, message.id)
    return at is not None and any(sent.status in statuses for sent in history[at + 1 :])


def on_delivered(session: Session, message: OutboundMessage, now: datetime) -> bool:
    """A text delivered to this participant resolves their open `delivery_failed` flag, unless
    a text sent after it has failed since (its callback came first): an older text's delivery
    says nothing about the newer failure that keeps the flag open."""
    if message.participant_id is None:
        return False
    flag = session.scalars(
        select(Flag).where(
            Flag.participant_id == message.participant_id,
            Flag.reason == "delivery_failed",
            Flag.state != "resolved",
        )
    ).first()
    if flag is None or _after(session, message, _FAILED):
        return False
    resolve_flag(
        session,
        flag,
        outcome="no_action_needed",
        note="A later text to this number was delivered.",
        now=now,
        user_id=None,
        automatic=True,
    )
    return True


def _note(what: str, note: str) -> str:
    """The flag's resolution note: what was done, and the coordinator's own words if any."""
    return f"{what} {note.strip()[:500]}" if note.strip() else what


def _resolve(
    session: Session, participant: Participant, note: str, user_id: int, now: datetime
) -> None:
    flag = open_flag(session, participant.id)
    if flag is not None:
        resolve_flag(session, flag, outcome="reached", note=note, now=now, user_id=user_id)


def confirm_number(
    session: Session, participant: Participant, *, user_id: int, now: datetime, note: str = ""
) -> None:
    """A coordinator checked the number is still the person's: audited, and the
    `number_changed` flag resolves (automation resumes). The number did not change, so the
    phone history gets nothing."""
    record(
        session,
        now=now,
        action="participant.number_confirmed",
        actor="dashboard",
        user_id=user_id,
        participant_id=participant.id,
    )
    _resolve(session, participant, _note("Number confirmed by a coordinator.", note), user_id, now)
    session.flush()


def change_number(
    session: Session,
    participant: Participant,
    new_phone: str,
    *,
    user_id: int,
    now: datetime,
    note: str = "",
) -> None:
    """Give the person a new number (normalised to E.164 here) through
    participants_editing.change_phone: the old one is kept in the phone history, texts not yet
    sent are readdressed, the change audited (masked numbers only), and the `number_changed`
    flag resolves. Refused when the number belongs to someone else."""
    try:
        phone = normalize_phone(new_phone)
    except ValueError as exc:
        raise NumberError(f"{new_phone!r} is not a valid mobile number") from exc
    if phone == participant.phone:
        raise NumberError("that is the number we already have: confirm it instead")
    taken = session.scalar(
        select(Participant.id).where(Participant.phone == phone, Participant.id != participant.id)
    )
    if taken is not None:
        raise NumberError("another participant has that number")
    record(
        session,
        now=now,
        action="participant.number_changed",
        actor="dashboard",
        user_id=user_id,
        participant_id=participant.id,
        detail={"old": mask_phone(participant.phone), "new": mask_phone(phone)},
    )
    participants_editing.change_phone(
        session, participant, phone, kind="edited", now=now, user_id=user_id
    )
    _resolve(session, participant, _note("Number changed by a coordinator.", note), user_id, now)
    session.flush()
