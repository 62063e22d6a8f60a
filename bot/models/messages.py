"""The outbox and the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, false, text, true
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, in_list

CHANNELS = ("sms", "whatsapp")
PURPOSES = ("welcome", "checkin", "reminder", "reply", "crisis_reply", "coach_reply", "page")
# The priority lane (DESIGN.md §1, "Urgent first"; scheduler/urgent.py): pages to staff, crisis
# replies that go through the outbox, and staff replies. Urgency is the purpose, so every
# writer of these rows (paging, the webhook's late replies, the dashboard) needs no change.
URGENT_PURPOSES = ("page", "crisis_reply", "coach_reply")
# The urgent lane's work list, as one literal predicate: the partial index below has exactly
# this WHERE and the lane's query repeats it word for word (SQLite uses a partial index only
# for a query whose WHERE contains the index's terms as written, not as bound parameters).
URGENT_PENDING = f"status = 'pending' AND {in_list('purpose', URGENT_PURPOSES)}"
# The answers that may go to a number with no participant or staff member behind it (an
# unknown sender): the automatic reply, the crisis reply, and a staff member's reply. The last
# two are urgent (above) like any other crisis or staff reply, so they share the priority lane.
ANSWER_PURPOSES = ("reply", "crisis_reply", "coach_reply")
# pending: waiting to be claimed; sending: claimed, the request may be in flight;
# queued/sent/delivered/undelivered/failed: Twilio's own statuses; unknown: the request left and
# no answer came back, so it must not be blindly resent; cancelled: never sent (STOP, paused,
# window closed before the claim); needs_template: a WhatsApp message outside the person's
# 24-hour window with no approved template mapped for it (or refused by WhatsApp, 63016), never
# sent as free text (bot/services/whatsapp_window.py).
OUTBOUND_STATUSES = (
    "pending",
    "sending",
    "queued",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "unknown",
    "cancelled",
    "needs_template",
)
PROCESSING_STATES = ("received", "processed", "failed")
# How a text stopped waiting for a reply (bot.services.inbox): automation fully answered it, a
# staff member replied, or a staff member said no reply is needed.
ANSWER_KINDS = ("automatic", "reply", "no_reply_needed")
_WAITING = "needs_reply"
_UNSENT = "status IN ('pending', 'sending')"


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("purpose", PURPOSES), name="purpose"),
        CheckConstraint(in_list("status", OUTBOUND_STATUSES), name="status"),
        CheckConstraint(
            "participant_id IS NOT NULL OR user_id IS NOT NULL OR "
            + in_list("purpose", ANSWER_PURPOSES),
            name="has_recipient",
        ),
        # The claim's and the stale-claim recovery's work list. Partial: a row's move from
        # `sending` to its outcome adds no entry (see PlannedContact's due index).
        Index(
            "ix_outbound_messages_status_send_after",
            "status",
            "send_after",
            postgresql_where=text(_UNSENT),
            # Not on SQLite: it cannot prove `status = 'pending'` implies the predicate (only
            # a term found as such in the query) and would scan the whole outbox instead.
        ),
        # The urgent lane polls this twice a second: pending urgent rows only, so the poll reads
        # a handful of entries however large a routine backlog (or a morning's deferred texts).
        Index(
            "ix_outbound_messages_urgent_pending",
            "send_after",
            postgresql_where=text(URGENT_PENDING),
            sqlite_where=text(URGENT_PENDING),
        ),
        Index("ix_outbound_messages_participant_id_created_at", "participant_id", "created_at"),
        # The sweep turns recently sent check-ins and reminders into expectations; the reports
        # count sent texts. Partial: an unsent row (the outbox insert) adds no entry.
        Index(
            "ix_outbound_messages_purpose_sent_at",
            "purpose",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
            sqlite_where=text("sent_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique before any network call: the same planned contact or reply can never become two rows.
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE")
    )
    # Set for pages to staff.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The planned contact this message carries out (at most one message per contact).
    planned_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("planned_contacts.id", ondelete="SET NULL"), unique=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    purpose: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    to_address: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(server_default="1")
    # Crisis replies and urgent pages go out in quiet hours; nothing else does.
    ignore_quiet_hours: Mapped[bool] = mapped_column(server_default=false())
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    # WhatsApp outside the 24-hour window: the approved template (Content SID) and its
    # variables as Twilio's ContentVariables JSON, chosen when the text was rendered.
    content_sid: Mapped[str | None] = mapped_column(String(34))
    content_variables: Mapped[str | None] = mapped_column(Text)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(server_default="0")
    send_after: Mapped[datetime]
    not_after: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    # When the claim was handed to the transport (committed just before the sends it covers):
    # a stale claim without it is known unsent and goes back to `pending`, not `unknown`.
    handed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    status_updated_at: Mapped[datetime | None]


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("processing_state", PROCESSING_STATES), name="processing_state"),
        Index("ix_inbound_messages_participant_id_received_at", "participant_id", "received_at"),
        # For the tick's retry of texts their webhook did not finish (bot.services.inbound.
        # process_stuck), which looks at the last hour only. Deliberately not an index on
        # processing_state, not even a partial one: that would turn the webhook's "processed"
        # UPDATE of every text from a HOT update into one that rewrites every index.
        Index("ix_inbound_messages_received_at", "received_at"),
        CheckConstraint(in_list("answer_kind", ANSWER_KINDS), name="answer_kind"),
        # The inbox: the texts still waiting for a person, and nothing else. Partial, so the
        # webhook's "processed" UPDATE stays HOT and an answered text leaves the index.
        Index(
            "ix_inbound_messages_waiting",
            "participant_id",
            "received_at",
            postgresql_where=text(_WAITING),
            sqlite_where=text(_WAITING),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Twilio retries a webhook it did not get an answer to; the SID makes the retry a no-op.
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_address: Mapped[str] = mapped_column(String(40), index=True)
    to_address: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    num_media: Mapped[int] = mapped_column(server_default="0")
    # The whole form as Twilio posted it (a list per key), so nothing is lost.
    raw_form: Mapped[dict[str, Any]]
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", ondelete="SET NULL")
    )
    received_at: Mapped[datetime]
    processing_state: Mapped[str] = mapped_column(String(10), server_default="received")
    processing_error: Mapped[str | None] = mapped_column(String(255))
    # What the bot understood: stop, start, help, yes, no, crisis, none.
    intent: Mapped[str | None] = mapped_column(String(12))
    processed_at: Mapped[datetime | None]
    # Waiting for a person to reply (DESIGN.md §2 "Inbox"). Every text waits from the moment it
    # is stored; processing ends the wait of one automation fully answered (bot.services.inbox),
    # and a staff reply or "no reply needed" ends it for all of the sender's waiting texts.
    needs_reply: Mapped[bool] = mapped_column(server_default=true())
    answered_at: Mapped[datetime | None]
    answered_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    answer_kind: Mapped[str | None] = mapped_column(String(20))


class EarlyStatusCallback(Base):
    """A status callback for a SID the outbox does not know yet.

    Twilio can call back before the sender has committed the SID it got for a message (the
    answer to the send and the first callback race). Dropping such a callback would lose a
    `failed` or `undelivered` for good, and with it the `delivery_failed` flag; so it waits here
    and each scheduler tick applies the ones whose SID has since been recorded. Callbacks for
    SIDs that never turn up (another app on the same account) are dropped after a day. Only the
    SID, the status and the numeric error code are kept: no body, no number, and not Twilio's
    free-text error message (it can quote the number).
    """

    __tablename__ = "early_status_callbacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), index=True)
    twilio_status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[int | None]
    received_at: Mapped[datetime] = mapped_column(index=True)
