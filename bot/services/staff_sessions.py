"""Dashboard sign-ins held on the server (issue 17.6).

A sign-in is a row with the SHA-256 digest of a random token; the browser's signed session
cookie carries the token. Flask-Login's user loader (bot/web/auth.py) accepts a cookie only
while its row exists, so signing out (which deletes the row) makes a saved copy of the cookie
worthless, and a password change or reset ends the user's other sign-ins by deleting theirs.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.models import StaffSession, User

# A sign-in older than this is refused and pruned: a forgotten browser does not stay open.
SESSION_MAX_AGE = timedelta(days=30)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, now: datetime) -> str:
    """Record a new sign-in for `user` and return its token (the caller commits)."""
    token = secrets.token_urlsafe(32)
    session.execute(
        delete(StaffSession).where(
            StaffSession.user_id == user.id, StaffSession.created_at < now - SESSION_MAX_AGE
        )
    )
    session.add(StaffSession(user_id=user.id, token_hash=token_digest(token), created_at=now))
    session.flush()
    return token


def session_user(session: Session, user_id: int, token: str, now: datetime) -> User | None:
    """The active user this sign-in belongs to, or None when it has ended."""
    return session.scalars(
        select(User)
        .join(StaffSession, StaffSession.user_id == User.id)
        .where(
            User.id == user_id,
            User.active.is_(True),
            StaffSession.token_hash == token_digest(token),
            StaffSession.created_at >= now - SESSION_MAX_AGE,
        )
    ).first()


def end_session(session: Session, token: str) -> None:
    session.execute(delete(StaffSession).where(StaffSession.token_hash == token_digest(token)))


def end_sessions(session: Session, user_id: int, *, keep_token: str | None = None) -> int:
    """End every sign-in of this user except the one holding `keep_token`; how many ended."""
    statement = delete(StaffSession).where(StaffSession.user_id == user_id)
    if keep_token is not None:
        statement = statement.where(StaffSession.token_hash != token_digest(keep_token))
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)
