"""A CSV uploaded in the dashboard and previewed, waiting for the uploader to confirm it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, in_list

IMPORT_KINDS = ("participants", "appointments")


class PendingImport(Base):
    """The file exactly as previewed (decoded text and its SHA-256) and the counts the preview
    showed. Confirming writes this text or nothing; the row is deleted once confirmed,
    cancelled, or an hour old (`expires_at`)."""

    __tablename__ = "pending_imports"
    __table_args__ = (CheckConstraint(in_list("kind", IMPORT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The URL's key: random, so one pending import cannot be found from another's id.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # {"created": n, "updated": n, "unchanged": n, "replanned": n, "rows": n}
    counts: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
