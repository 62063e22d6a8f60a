"""Flags (something a person must look at), their history, and the expectations that raise them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, in_list

REASONS = (
    "no_reply",
    "unconfirmed_appointment",
    "appointment_declined",
    "delivery_failed",
    "delivery_unknown",
    "crisis",
    "opted_out",
    "unknown_sender",
    "unanswered_text",
    "twilio_account",
    "whatsapp_template_missing",
    "number_changed",
)
# Reasons about the program itself, not a person or a number: participant and sender NULL, one
# unresolved flag per reason (DESIGN.md, Precise rules, "Severities").
PROGRAM_REASONS = ("twilio_account", "whatsapp_template_missing")
SEVERITIES = ("info", "normal", "high", "urgent")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
# The one table from a flag's reason to its severity (DESIGN.md, Precise rules, "Severities").
# Reasons not raised yet (unanswered_text, number_changed, whatsapp_template_missing,
# twilio_account) are here so that whoever adds them finds their severity already decided.
REASON_SEVERITY = {
    "crisis": "urgent",
    "delivery_failed": "high",
    "delivery_unknown": "high",
    "number_changed": "high",
    "whatsapp_template_missing": "high",
    "twilio_account": "high",
    "no_reply": "normal",
    "unanswered_text": "normal",
    "unconfirmed_appointment": "normal",
    "appointment_declined": "normal",
    "unknown_sender": "normal",
    "opted_out": "info",
}
# What a reason becomes when it escalates: no_reply from the second miss in a row,
# unanswered_text after 48 h.
ESCALATED_SEVERITY = {"no_reply": "high", "unanswered_text": "high"}


def severity_for(reason: str, *, escalated: bool = False) -> str:
    """The severity a flag of this reason is raised with (`escalated`: the reason's second
    level, for the reasons that have one). KeyError for a reason the table does not know."""
    if escalated and reason in ESCALATED_SEVERITY:
        return ESCALATED_SEVERITY[reason]
    return REASON_SEVERITY[reason]


STATES = ("open", "acknowledged", "resolved")
EXPECTATION_KINDS = ("reply", "confirm")
EXPECTATION_STATES = ("pending", "satisfied", "missed", "cancelled")

_UNRESOLVED = text("state <> 'resolved'")
_UNRESOLVED_UNKNOWN = text("state <> 'resolved' AND participant_id IS NULL")
_UNRESOLVED_PROGRAM = text(
    "state <> 'resolved' AND participant_id IS NULL AND sender_address IS NULL"
)


class Flag(Base):
    __tablename__ = "flags"
    __table_args__ = (
        CheckConstraint(in_list("reason", REASONS), name="reason"),
        CheckConstraint(in_list("severity", SEVERITIES), name="severity"),
        CheckConstraint(in_list("state", STATES), name="state"),
        CheckConstraint(
            "participant_id IS NOT NULL OR sender_address IS NOT NULL OR "
            + in_list("reason", PROGRAM_REASONS),
            name="has_subject",
        ),
        # At most one unresolved flag per participant and reason, enforced by the database so
        # that two workers cannot open twins; an unknown sender's flags are keyed by number.
        Index(
            "uq_flags_open_participant_reason",
            "participant_id",
            "reason",
            unique=True,
            sqlite_where=_UNRESOLVED,
            postgresql_where=_UNRESOLVED,
        ),
        Index(
            "uq_flags_open_sender_reason",
            "sender_address",
            "reason",
            unique=True,
            sqlite_where=_UNRESOLVED_UNKNOWN,
            postgresql_where=_UNRESOLVED_UNKNOWN,
        ),
        # And one unresolved program-level flag per reason.
        Index(
            "uq_flags_open_program_reason",
            "reason",
            unique=True,
            sqlite_where=_UNRESOLVED_PROGRAM,
            postgresql_where=_UNRESOLVED_PROGRAM,
        ),
        Index("ix_flags_state_severity_opened_at", "state", "severity", "opened_at"),
        # The conversation page lists a participant's flags, resolved ones too.
        Index("ix_flags_participant_id_opened_at", "participant_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE")
    )
    sender_address: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(12), server_default="open")
    # How many misses in a row this flag stands for (no_reply escalates on the second).
    occurrences: Mapped[int] = mapped_column(server_default="1")
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    outcome: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    # Escalation ladder: the next step to page and when.
    ladder_step: Mapped[int] = mapped_column(server_default="0")
    next_page_at: Mapped[datetime | None] = mapped_column(index=True)
    # The text that raised the flag (a crisis text, an unknown sender's first text), shown on
    # the urgent card and the flag page rather than whatever was said or sent since.
    trigger_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )


class FlagEvent(Base):
    __tablename__ = "flag_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    # opened, severity_raised, acknowledged, resolved, auto_resolved, paged, page_skipped, note
    kind: Mapped[str] = mapped_column(String(30))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any] | None]


class Expectation(Base):
    """ "Reply by T" after a check-in, "confirm by T" after a reminder."""

    __tablename__ = "expectations"
    __table_args__ = (
        CheckConstraint(in_list("kind", EXPECTATION_KINDS), name="kind"),
        CheckConstraint(in_list("state", EXPECTATION_STATES), name="state"),
        Index("ix_expectations_state_due_at", "state", "due_at"),
        Index("ix_expectations_participant_id_state", "participant_id", "state"),
        # One "confirm by" per appointment time: a moved appointment (new version) gets its own.
        # Partial: a "reply by" (no appointment) adds no entry.
        Index(
            "uq_expectations_appointment_id_appointment_version",
            "appointment_id",
            "appointment_version",
            unique=True,
            postgresql_where=text("appointment_id IS NOT NULL"),
            sqlite_where=text("appointment_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    outbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbound_messages.id", ondelete="SET NULL"), unique=True
    )
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE")
    )
    # The appointment's version when the expectation was made (confirm expectations only).
    appointment_version: Mapped[int | None]
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(10), server_default="pending")
    resolved_at: Mapped[datetime | None]
    flag_id: Mapped[int | None] = mapped_column(ForeignKey("flags.id", ondelete="SET NULL"))
