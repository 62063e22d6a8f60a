"""Planned contacts: the schedule, materialised. The database is the schedule."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, in_list

KINDS = ("welcome", "checkin", "reminder")
STATES = ("planned", "queued", "sent", "skipped", "cancelled")


class PlannedContact(Base):
    __tablename__ = "planned_contacts"
    __table_args__ = (
        # Exactly once, by key: planning twice, or two planners at once, cannot create twins.
        UniqueConstraint("participant_id", "rule", "occurrence", "version"),
        CheckConstraint(in_list("kind", KINDS), name="kind"),
        CheckConstraint(in_list("state", STATES), name="state"),
        CheckConstraint("not_after >= send_after", name="window_order"),
        # The due contacts, in time order. Partial (only `planned` rows, and no state column),
        # like the appointment index below: a contact's moves planned -> queued -> sent add no
        # entry to either (an UPDATE that is not HOT inserts into every index whose predicate
        # the new row meets), two index writes fewer per move.
        Index(
            "ix_planned_contacts_planned_send_after",
            "send_after",
            postgresql_where=text("state = 'planned'"),
            sqlite_where=text("state = 'planned'"),
        ),
        Index(
            "ix_planned_contacts_appointment_id",
            "appointment_id",
            postgresql_where=text("appointment_id IS NOT NULL"),
            sqlite_where=text("appointment_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    # e.g. "welcome", "checkin", "reminder.3d"; occurrence e.g. "day-5" or "appt-12"
    rule: Mapped[str] = mapped_column(String(40))
    occurrence: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(40))
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE")
    )
    template_key: Mapped[str] = mapped_column(String(60))
    send_after: Mapped[datetime]
    not_after: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(10), server_default="planned")
    state_reason: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
