"""Signing in to the dashboard: the lockout policy, without Flask.

A wrong password counts against the account: MAX_FAILED_LOGINS in a row lock it for
LOCK_MINUTES. Failed sign-ins also count against the address they came from (any accounts):
MAX_FAILED_PER_ADDRESS within ADDRESS_WINDOW_MINUTES refuse further attempts from it until the
window passes (higher than the account limit, so a shared office connection is not blocked by
one person's typos). Every attempt is written to the audit log, which is also where the
per-address count is read from. The web view (bot/web/auth.py) only turns the outcome into a
page and a session, and answers unknown emails, wrong passwords, locked and deactivated
accounts alike (issue 17.6), so the page tells a guesser nothing about an account.

Counting is atomic: before a password is checked, one conditional UPDATE … RETURNING takes one
of the account's remaining tries (and none once it is locked or its tries are taken), so
concurrent guesses at one account are never more than MAX_FAILED_LOGINS, on PostgreSQL as on
SQLite. The right password gives the try back (the count returns to 0); the wrong one that
used the last try locks the account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.models import AuditLog, User
from bot.services.audit import record
from bot.services.passwords import hash_password, verify_password
from bot.services.users import find_user_by_email

MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
MAX_FAILED_PER_ADDRESS = 20
ADDRESS_WINDOW_MINUTES = 15

# Compared against when no password is checked, so every refusal takes as long as a wrong
# password.
_DUMMY_HASH = hash_password("not-a-real-password-for-timing")


@dataclass(frozen=True)
class LoginAttempt:
    # ok: signed in; throttled: too many failures from this address; locked: the account is
    # locked (or its last tries are being checked right now) and the password was not checked;
    # failed: wrong email or password, or an inactive account.
    outcome: Literal["ok", "throttled", "locked", "failed"]
    user: User | None = None
    # Set when the account is locked (already, or by this attempt).
    locked_until: datetime | None = None
    # This attempt was the one that locked the account.
    locked_now: bool = False


def failures_from_address(session: Session, address: str, now: datetime) -> int:
    since = now - timedelta(minutes=ADDRESS_WINDOW_MINUTES)
    count = session.scalar(
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.action == "login.failed",
            AuditLog.at >= since,
            AuditLog.detail["address"].as_string() == address,
        )
    )
    return int(count or 0)


def _take_a_try(session: Session, user_id: int, now: datetime) -> int | None:
    """Atomically count one try against the account: the tries used so far including this one,
    or None when none is left (locked, or the last ones are being checked concurrently)."""
    taken = session.execute(
        update(User)
        .where(
            User.id == user_id,
            User.active.is_(True),
            or_(User.locked_until.is_(None), User.locked_until <= now),
            User.failed_logins < MAX_FAILED_LOGINS,
        )
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return None if taken is None else int(taken)


def attempt_login(
    session: Session, *, email: str, password: str, address: str, now: datetime
) -> LoginAttempt:
    """Check one sign-in and record it (the caller commits). The email is matched as given
    (the caller lower-cases and strips it)."""
    if failures_from_address(session, address, now) >= MAX_FAILED_PER_ADDRESS:
        return LoginAttempt("throttled")
    user = find_user_by_email(session, email) if email else None
    if user is not None and not user.active:
        verify_password(_DUMMY_HASH, password)
        return _failed(session, user, address, now)
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return _failed(session, None, address, now)

    tries = _take_a_try(session, user.id, now)
    if tries is None:
        verify_password(_DUMMY_HASH, password)
        session.refresh(user)
        record(
            session,
            now=now,
            action="login.locked",
            actor="dashboard",
            user_id=user.id,
            detail={"address": address},
        )
        return LoginAttempt("locked", user, locked_until=user.locked_until)

    if verify_password(user.password_hash, password):
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=0, locked_until=None)
            .execution_options(synchronize_session=False)
        )
        session.refresh(user)
        record(
            session,
            now=now,
            action="login",
            actor="dashboard",
            user_id=user.id,
            detail={"address": address},
        )
        return LoginAttempt("ok", user)

    if tries >= MAX_FAILED_LOGINS:
        locked_until = now + timedelta(minutes=LOCK_MINUTES)
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=0, locked_until=locked_until)
            .execution_options(synchronize_session=False)
        )
        session.refresh(user)
        return _failed(session, user, address, now, locked_until=locked_until)
    session.refresh(user)
    return _failed(session, user, address, now)


def _failed(
    session: Session,
    user: User | None,
    address: str,
    now: datetime,
    *,
    locked_until: datetime | None = None,
) -> LoginAttempt:
    detail: dict[str, Any] = {"address": address}
    if locked_until is not None:
        detail["locked"] = True
    record(
        session,
        now=now,
        action="login.failed",
        actor="dashboard",
        user_id=user.id if user else None,
        detail=detail,
    )
    return LoginAttempt(
        "failed", user, locked_until=locked_until, locked_now=locked_until is not None
    )
