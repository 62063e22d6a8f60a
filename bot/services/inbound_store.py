"""Storing an inbound text: exactly once per MessageSid, in one statement.

The webhook's first transaction (bot.services.inbound.receive) is this INSERT and its commit;
nothing acts on a text before it is stored for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.db import is_postgresql
from bot.models import InboundMessage, OutboundMessage, Participant
from bot.phones import PhoneError, normalize_phone, split_channel_address


@dataclass(frozen=True)
class InboundForm:
    """What the webhook parsed out of Twilio's form (already checked and cleaned)."""

    message_sid: str
    from_address: str
    to_address: str
    body: str
    num_media: int
    # The whole form, a list of values per key, as Twilio posted it (media URLs included).
    raw_form: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredText:
    """What storing a text returns: enough to decide how to process it without reading it back."""

    id: int
    participant_id: int | None
    channel: str


@dataclass(frozen=True)
class Incoming:
    """A stored text as processing sees it: built from what the INSERT returned (the webhook)
    or from the stored row (a tick retrying a text its webhook did not finish)."""

    id: int
    message_sid: str
    from_address: str
    channel: str
    body: str
    received_at: datetime
    participant_id: int | None

    @classmethod
    def stored(cls, stored: StoredText, form: InboundForm, received_at: datetime) -> Incoming:
        return cls(
            id=stored.id,
            message_sid=form.message_sid,
            from_address=form.from_address,
            channel=stored.channel,
            body=form.body,
            received_at=received_at,
            participant_id=stored.participant_id,
        )

    @classmethod
    def of(cls, message: InboundMessage) -> Incoming:
        return cls(
            id=message.id,
            message_sid=message.message_sid,
            from_address=message.from_address,
            channel=message.channel,
            body=message.body,
            received_at=message.received_at,
            participant_id=message.participant_id,
        )


def sender_phone(from_address: str) -> str | None:
    """The E.164 phone behind `+1...` or `whatsapp:+1...`, or None if it is not a phone."""
    _channel, phone = split_channel_address(from_address)
    if phone.startswith("+"):
        return phone
    try:
        return normalize_phone(phone)
    except PhoneError:
        return None


# Core, not ORM, and built once: this runs for every text, and building an INSERT from the ORM
# entity and loading the row back as an object cost more than the INSERT itself.
_inbound = cast(Table, InboundMessage.__table__)
_participants = cast(Table, Participant.__table__)
_outbound = cast(Table, OutboundMessage.__table__)
_STORE_VALUES = {
    name: bindparam(name, type_=_inbound.c[name].type)
    for name in (
        "message_sid",
        "from_address",
        "to_address",
        "channel",
        "body",
        "num_media",
        "raw_form",
        "received_at",
    )
}
# The sender is matched inside the INSERT. Not their status: it may change before the text is
# processed (a STOP sent just before), so processing reads it when it acts.
_MATCHED_PARTICIPANT = (
    select(_participants.c.id).where(_participants.c.phone == bindparam("phone")).scalar_subquery()
)


def _store_statement(insert: Any) -> Any:
    return (
        insert(_inbound)
        .values(**_STORE_VALUES, participant_id=_MATCHED_PARTICIPANT, processing_state="received")
        .on_conflict_do_nothing(index_elements=["message_sid"])
        .returning(_inbound.c.id, _inbound.c.participant_id, _inbound.c.channel)
    )


_STORE = {"postgresql": _store_statement(pg_insert), "sqlite": _store_statement(sqlite_insert)}
MARK_PROCESSED = (
    update(_inbound)
    .where(_inbound.c.id == bindparam("message_id"))
    .values(
        intent=bindparam("understood"), processing_state="processed", processed_at=bindparam("at")
    )
)
_STORED_REPLY = select(_outbound.c.body).where(
    _outbound.c.idempotency_key == bindparam("key"),
    _outbound.c.status == "sent",
    _outbound.c.provider_sid.is_(None),
)


def store(session: Session, form: InboundForm, *, now: datetime) -> StoredText | None:
    """Insert the raw message unless its MessageSid is already stored. Returns what was stored,
    or None for a duplicate. The database decides (unique index + ON CONFLICT DO NOTHING), so
    two requests at the same moment cannot both win.

    One statement does it all (the sender is matched inside the INSERT and the row comes back
    through RETURNING): this runs for every text, and every round trip here is paid by all of
    them."""
    channel, _phone = split_channel_address(form.from_address)
    params = {
        "message_sid": form.message_sid,
        "from_address": form.from_address,
        "to_address": form.to_address,
        "channel": channel,
        "body": form.body,
        "num_media": form.num_media,
        "raw_form": form.raw_form,
        "received_at": now,
        "phone": sender_phone(form.from_address),
    }
    statement = _STORE["postgresql" if is_postgresql(session) else "sqlite"]
    row = session.execute(statement, params).first()
    if row is None:
        return None
    return StoredText(id=row[0], participant_id=row[1], channel=row[2])


def stored_reply(session: Session, message_sid: str) -> str | None:
    """The TwiML reply recorded for a MessageSid (status `sent`, no SID of its own). A reply a
    tick queued for the worker is not one: answering with it too would send it twice."""
    body: str | None = session.scalars(_STORED_REPLY, {"key": f"reply:{message_sid}"}).first()
    return body


def mark_failed(session: Session, message_id: int, error: Exception, *, now: datetime) -> None:
    """Keep the stored message visible to coaches as `failed`, with the error's class (its text
    may quote SQL parameters, i.e. the body). Never over a tick's late processing: the text
    would be acted on twice."""
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message_id, InboundMessage.processing_state != "processed")
        .values(
            processing_state="failed",
            processing_error=type(error).__name__[:255],
            processed_at=now,
        )
    )
    session.commit()
