"""Passwords: hashing (argon2), what a new password must be, changing one's own, and one-time
reset links (issue 18.3).

A new password has at least MIN_PASSWORD_LENGTH characters and is not a common password: not
one of the 10,000 most common (bot/data/common_passwords.txt, from zxcvbn's list, MIT), nor one
of them with digits or symbols around it ("Sunshine2024!"), nor the user's own email or name.

A reset link is `PUBLIC_BASE_URL/reset/<token>`: valid for RESET_VALID_FOR, once. Only the
token's SHA-256 digest is stored, a new link replaces the user's earlier unused ones, and
setting the password through it ends every sign-in of that user. A change of one's own
password (the current one required) ends that user's other sign-ins. All of it is audited; the
caller commits.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.models import PasswordReset, User
from bot.services.audit import record
from bot.services.staff_sessions import end_sessions, token_digest

MIN_PASSWORD_LENGTH = 12
RESET_VALID_FOR = timedelta(hours=1)
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common_passwords.txt"

_hasher = PasswordHasher()
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


class PasswordError(ValueError):
    """A password is refused; the message says why, for the person choosing it."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.lower() for line in lines if line and not line.startswith("# "))


def check_new_password(password: str, *, email: str = "", name: str = "") -> None:
    """Raise PasswordError saying why `password` may not be used."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"must be at least {MIN_PASSWORD_LENGTH} characters")
    folded = password.strip().lower()
    core = _EDGES.sub("", folded)
    common = common_passwords()
    if folded in common or (len(core) >= 4 and core in common):
        raise PasswordError("is one of the most common passwords; choose another")
    if len(set(folded)) <= 2:
        raise PasswordError("repeats one or two characters; choose another")
    own = {email.lower(), email.lower().split("@")[0], name.lower(), name.lower().replace(" ", "")}
    if folded in own or core in own - {""}:
        raise PasswordError("is your email or name; choose another")


def change_password(
    session: Session,
    user: User,
    *,
    current: str,
    new: str,
    now: datetime,
    keep_session_token: str | None,
) -> None:
    """The user changes their own password: `current` must be right. Ends the user's other
    sign-ins (the one holding `keep_session_token` stays)."""
    if not verify_password(user.password_hash, current):
        raise PasswordError("current password: that is not your current password")
    try:
        check_new_password(new, email=user.email, name=user.name)
    except PasswordError as exc:
        raise PasswordError(f"new password: {exc}") from None
    if verify_password(user.password_hash, new):
        raise PasswordError("new password: is the same as the current one")
    user.password_hash = hash_password(new)
    ended = end_sessions(session, user.id, keep_token=keep_session_token)
    record(
        session,
        now=now,
        action="password.change",
        actor="dashboard",
        user_id=user.id,
        detail={"other_sessions_ended": ended},
    )


@dataclass(frozen=True)
class IssuedReset:
    user: User
    token: str
    expires_at: datetime


def issue_reset(
    session: Session, user: User, *, now: datetime, issued_by: User | None, actor: str
) -> IssuedReset:
    """A new one-time link for `user` (earlier unused links stop working). `issued_by` is the
    admin in the dashboard, or None at a terminal; `actor` is what the audit log names."""
    if not user.active:
        raise PasswordError(f"{user.email} is deactivated: reactivate the account first")
    token = secrets.token_urlsafe(32)
    session.execute(
        delete(PasswordReset).where(
            PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None)
        )
    )
    expires_at = now + RESET_VALID_FOR
    session.add(
        PasswordReset(
            user_id=user.id,
            token_hash=token_digest(token),
            issued_by_user_id=issued_by.id if issued_by else None,
            created_at=now,
            expires_at=expires_at,
        )
    )
    record(
        session,
        now=now,
        action="password.reset_issued",
        actor=actor,
        user_id=issued_by.id if issued_by else None,
        detail={"for_user_id": user.id, "expires_at": expires_at.isoformat()},
    )
    session.flush()
    return IssuedReset(user, token, expires_at)


def reset_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/reset/{token}"


def _usable_reset(session: Session, token: str, now: datetime) -> PasswordReset | None:
    if not token or len(token) > 200:
        return None
    reset = session.scalars(
        select(PasswordReset).where(PasswordReset.token_hash == token_digest(token))
    ).first()
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        return None
    user = session.get(User, reset.user_id)
    if user is None or not user.active:
        return None
    return reset


def reset_user(session: Session, token: str, now: datetime) -> User | None:
    """Whose password this link resets, or None when it is unknown, used or expired."""
    reset = _usable_reset(session, token, now)
    return session.get(User, reset.user_id) if reset else None


def complete_reset(session: Session, token: str, *, new: str, now: datetime) -> User:
    """Set the new password through a link: once, within the hour. Ends every sign-in of the
    user and lifts a lockout (the link proves the admin's trust)."""
    reset = _usable_reset(session, token, now)
    if reset is None:
        raise PasswordError("link: this link has expired or was already used; ask an admin")
    user = session.get(User, reset.user_id)
    assert user is not None
    try:
        check_new_password(new, email=user.email, name=user.name)
    except PasswordError as exc:
        raise PasswordError(f"new password: {exc}") from None
    # Used once: the conditional UPDATE makes two submissions of one link race to one winner.
    claimed = session.execute(
        update(PasswordReset)
        .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    if int(getattr(claimed, "rowcount", 0) or 0) != 1:
        raise PasswordError("link: this link has expired or was already used; ask an admin")
    user.password_hash = hash_password(new)
    user.failed_logins = 0
    user.locked_until = None
    ended = end_sessions(session, user.id)
    record(
        session,
        now=now,
        action="password.reset",
        actor="dashboard",
        user_id=user.id,
        detail={"sessions_ended": ended},
    )
    session.flush()
    return user
