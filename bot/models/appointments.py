"""Appointments a participant is reminded of."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, in_list

KINDS = ("court", "supervision", "treatment", "benefits", "medical", "housing", "other")
STATUSES = ("scheduled", "confirmed", "declined", "cancelled")


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint(in_list("kind", KINDS), name="kind"),
        CheckConstraint(in_list("status", STATUSES), name="status"),
        Index("ix_appointments_participant_id_starts_at", "participant_id", "starts_at"),
        # Appointments whose reminders were planned for an older version (or never).
        Index(
            "ix_appointments_needs_plan",
            "id",
            postgresql_where=text("planned_version IS NULL OR planned_version <> version"),
            sqlite_where=text("planned_version IS NULL OR planned_version <> version"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[datetime]
    location: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), server_default="scheduled")
    # The id from the program's own system (CSV `appointment_id`): re-import moves it.
    source_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Bumped when the time moves, so reminders planned for the old time are superseded.
    version: Mapped[int] = mapped_column(server_default="1")
    # The version whose reminders the planner last materialised (scheduler/plan.py).
    planned_version: Mapped[int | None]
    responded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
