"""People enrolled in the program and their consent history."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, in_list

CHANNELS = ("sms", "whatsapp")
LANGUAGES = ("en", "es")
STATUSES = ("active", "paused", "opted_out", "closed")
CONSENT_KINDS = ("consent", "opt_out", "opt_in")
# How consent was given ("signed enrolment form"), as an import or the form records it.
MAX_CONSENT_SOURCE = 200
# How a participant's number came to change (bot.services.participants_editing).
PHONE_CHANGE_KINDS = ("edited", "linked_unknown_number")


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("language", LANGUAGES), name="language"),
        CheckConstraint(in_list("status", STATUSES), name="status"),
        CheckConstraint("phone LIKE '+%'", name="phone_e164"),
        CheckConstraint("plan_version >= 1", name="plan_version_positive"),
        # The planner's work list: people whose plan is older than their plan_version. Partial,
        # so a tick with nothing to re-plan costs an empty index scan, not a population scan.
        Index(
            "ix_participants_needs_plan",
            "id",
            postgresql_where=text("planned_version IS NULL OR planned_version <> plan_version"),
            sqlite_where=text("planned_version IS NULL OR planned_version <> plan_version"),
        ),
        Index("ix_participants_planned_settings", "planned_settings"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    first_name: Mapped[str] = mapped_column(String(80))
    # Staff see it on their pages; it is never in a text (no template placeholder names it).
    last_name: Mapped[str | None] = mapped_column(String(80))
    # E.164. One person per number: inbound texts are matched by it.
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    channel: Mapped[str] = mapped_column(String(10), server_default="sms")
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5), server_default="en")
    release_date: Mapped[date] = mapped_column(Date)
    coach_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(12), server_default="active")
    consent_at: Mapped[datetime | None]
    consent_method: Mapped[str | None] = mapped_column(String(40))
    consent_recorded_by: Mapped[str | None] = mapped_column(String(254))
    opted_out_at: Mapped[datetime | None]
    # A coordinator closed the enrolment (status `closed`): when and why, shown on their page.
    closed_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(String(200))
    # The person's own PAUSE (a text): their check-ins and welcome are held until this instant;
    # appointment reminders still go. Written only by bot/services/self_service.py.
    checkins_paused_until: Mapped[datetime | None]
    enrolled_at: Mapped[datetime]
    # Bumped whenever something the plan depends on changes (release date, zone, status);
    # planned contacts of an older version are superseded and never sent.
    plan_version: Mapped[int] = mapped_column(server_default="1")
    # The plan_version and program-settings digest the planner last materialised (scheduler/plan.py).
    planned_version: Mapped[int | None]
    planned_settings: Mapped[str | None] = mapped_column(String(16))
    # DESIGN.md, Re-planning: the moment a change asked for a new plan (the earliest one still
    # waiting); the planner plans from it rather than from its own `now`, then clears it.
    # Set through bot.services.replan.request_replan.
    replan_from: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def address(self) -> str:
        """The address messages go to on this person's channel."""
        return f"whatsapp:{self.phone}" if self.channel == "whatsapp" else self.phone

    @property
    def display_name(self) -> str:
        """The full name for staff pages (first and last name when known); never texted."""
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name

    @property
    def label(self) -> str:
        """Neutral label for staff pages: first name and external id (we keep no last name,
        so DESIGN.md's "Sam R." becomes "Sam (P-00012)")."""
        return f"{self.first_name} ({self.external_id})"


class ConsentEvent(Base):
    """Every consent, opt-out and opt-in, with when, how and the wording used (kept for the
    record the law asks for; never logged).

    A consent's evidence (issue 19.3): `source` says how consent was given ("signed enrolment
    form") and `consent_date` when; a consent without a source was only asserted by whoever
    recorded it (an import: `import_file`, who ran it and when). `recorded_by_id` is the staff
    member; `recorded_by` names who recorded it otherwise (`cli:<user>` for the command line).
    Written only by bot.services.consent."""

    __tablename__ = "consent_events"
    __table_args__ = (
        CheckConstraint(in_list("kind", CONSENT_KINDS), name="kind"),
        # A date without a source is not evidence of anything.
        CheckConstraint("consent_date IS NULL OR source IS NOT NULL", name="date_has_source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime]
    method: Mapped[str] = mapped_column(String(40))
    wording: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str | None] = mapped_column(String(MAX_CONSENT_SOURCE))
    consent_date: Mapped[date | None] = mapped_column(Date)
    import_file: Mapped[str | None] = mapped_column(String(255))
    recorded_by: Mapped[str | None] = mapped_column(String(254))


class PhoneChange(Base):
    """A participant's earlier number: every change of `participants.phone` made in the
    dashboard (an edit, or an unknown number linked to them) keeps the old one here, with who
    and when. The audit log says the same without the numbers (it is read more widely)."""

    __tablename__ = "participant_phone_history"
    __table_args__ = (
        CheckConstraint(in_list("kind", PHONE_CHANGE_KINDS), name="kind"),
        Index(
            "ix_participant_phone_history_participant_id_changed_at", "participant_id", "changed_at"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    old_phone: Mapped[str] = mapped_column(String(20), index=True)
    new_phone: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(30))
    changed_at: Mapped[datetime]
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
