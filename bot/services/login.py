"""Signing in to the dashboard: the lockout policy, without Flask.

A wrong password counts against the account: MAX_FAILED_LOGINS in a row lock it for
LOCK_MINUTES. Failed sign-ins also count against the address they came from (any accounts):
MAX_FAILED_PER_ADDRESS within ADDRESS_WINDOW_MINUTES refuse further attempts from it until the
window passes (higher than the account limit, so a shared office connection is not blocked by
one person's typos). Every attempt is written to the audit log, which is also where the
per-address count is read from. The web view (bot/web/auth.py) only turns the outcome into a
page and a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import AuditLog, User
from bot.services.audit import record
from bot.services.users import find_user_by_email, hash_password, verify_password

MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
MAX_FAILED_PER_ADDRESS = 20
ADDRESS_WINDOW_MINUTES = 15

# Compared against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password-for-timing")


@dataclass(frozen=True)
class LoginAttempt:
    # ok: signed in; throttled: too many failures from this address; locked: the account was
    # already locked; failed: wrong email or password, or an inactive account.
    outcome: Literal["ok", "throttled", "locked", "failed"]
    user: User | None = None
    # Set when the account is locked (already, or by this attempt).
    locked_until: datetime | None = None
    # This attempt was the one that locked the account.
    locked_now: bool = False
    # Wrong passwords left before the account locks (a failed attempt on a known account).
    tries_left: int | None = None


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


def attempt_login(
    session: Session, *, email: str, password: str, address: str, now: datetime
) -> LoginAttempt:
    """Check one sign-in and record it (the caller commits). The email is matched as given
    (the caller lower-cases and strips it)."""
    if failures_from_address(session, address, now) >= MAX_FAILED_PER_ADDRESS:
        return LoginAttempt("throttled")
    user = find_user_by_email(session, email) if email else None
    if user is not None and user.locked_until is not None and user.locked_until > now:
        record(
            session,
            now=now,
            action="login.locked",
            actor="dashboard",
            user_id=user.id,
            detail={"address": address},
        )
        return LoginAttempt("locked", user, locked_until=user.locked_until)

    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or not user.active:
        detail: dict[str, Any] = {"address": address}
        attempt = LoginAttempt("failed", user)
        if user is not None and not ok:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.failed_logins = 0
                user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
                detail["locked"] = True
                attempt = LoginAttempt(
                    "failed", user, locked_until=user.locked_until, locked_now=True
                )
            else:
                attempt = LoginAttempt(
                    "failed", user, tries_left=MAX_FAILED_LOGINS - user.failed_logins
                )
        record(
            session,
            now=now,
            action="login.failed",
            actor="dashboard",
            user_id=user.id if user else None,
            detail=detail,
        )
        return attempt

    user.failed_logins = 0
    user.locked_until = None
    record(
        session,
        now=now,
        action="login",
        actor="dashboard",
        user_id=user.id,
        detail={"address": address},
    )
    return LoginAttempt("ok", user)
