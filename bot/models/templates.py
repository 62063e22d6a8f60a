"""Message templates per key and language, every save kept as a version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (
        UniqueConstraint("key", "language"),
        CheckConstraint("length(body) <= 1600", name="body_length"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60))
    language: Mapped[str] = mapped_column(String(5))
    # The current body; the same text as the latest (or restored) version.
    body: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(server_default="1")
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class TemplateVersion(Base):
    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"))
    version: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # e.g. "default", "edited", "restored version 2"
    note: Mapped[str | None] = mapped_column(String(120))


class WhatsAppTemplate(Base):
    """A template key and language mapped to a WhatsApp template approved in Twilio (its
    Content SID) and which of our placeholders fills each of its numbered variables.

    Outside a person's 24-hour customer-service window WhatsApp refuses business-initiated free
    text; messages then go as this template (bot/services/whatsapp_window.py)."""

    __tablename__ = "whatsapp_templates"
    __table_args__ = (
        UniqueConstraint("template_key", "language"),
        CheckConstraint("content_sid LIKE 'HX%'", name="content_sid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_key: Mapped[str] = mapped_column(String(60))
    language: Mapped[str] = mapped_column(String(5))
    content_sid: Mapped[str] = mapped_column(String(34))
    # Twilio's variable number ("1", "2" ...) -> one of our placeholder names.
    variables: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
