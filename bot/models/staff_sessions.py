"""Dashboard sign-ins held on the server, and one-time password-reset links.

Both store only a SHA-256 digest of their token: the token itself lives in the browser's signed
session cookie (a sign-in) or in the link given to the user (a reset), never in the database,
so a copy of the database opens no session and resets no password.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class StaffSession(Base):
    """One signed-in browser. Signing out deletes it, so a saved cookie is refused afterwards;
    a password change or reset deletes the user's others."""

    __tablename__ = "staff_sessions"
    __table_args__ = (Index("ix_staff_sessions_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class PasswordReset(Base):
    """A one-time link with which a user sets a new password (issued by an admin in the
    dashboard or with `checkin reset-password`); valid until `expires_at`, once."""

    __tablename__ = "password_resets"
    __table_args__ = (Index("ix_password_resets_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The admin who issued it; null when issued at a terminal (`checkin reset-password`).
    issued_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
