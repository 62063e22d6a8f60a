"""The dashboard's lockout policy, without Flask (bot.services.login)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.models import AuditLog, User
from bot.services.login import (
    ADDRESS_WINDOW_MINUTES,
    LOCK_MINUTES,
    MAX_FAILED_LOGINS,
    MAX_FAILED_PER_ADDRESS,
    LoginAttempt,
    attempt_login,
)
from tests.factories import TEST_PASSWORD, make_user

ADDRESS = "192.0.2.10"


def _try(
    session: Session, email: str, password: str, now: datetime, address: str = ADDRESS
) -> LoginAttempt:
    return attempt_login(session, email=email, password=password, address=address, now=now)


def test_the_right_password_signs_in_and_clears_earlier_failures(
    session: Session, now: datetime
) -> None:
    user = make_user(session, now)
    assert _try(session, user.email, "wrong", now).outcome == "failed"
    assert user.failed_logins == 1
    attempt = _try(session, user.email, TEST_PASSWORD, now)
    assert attempt.outcome == "ok" and attempt.user is user
    assert user.failed_logins == 0 and user.locked_until is None
    actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["login.failed", "login"]


def test_the_fifth_wrong_password_locks_the_account_and_the_right_one_is_then_refused(
    session: Session, now: datetime
) -> None:
    user = make_user(session, now)
    for used in range(1, MAX_FAILED_LOGINS):
        assert _try(session, user.email, "wrong", now).outcome == "failed"
        assert user.failed_logins == used
    locking = _try(session, user.email, "wrong", now)
    assert locking.outcome == "failed" and locking.locked_now
    assert locking.locked_until == now + timedelta(minutes=LOCK_MINUTES)
    refused = _try(session, user.email, TEST_PASSWORD, now + timedelta(minutes=1))
    assert refused.outcome == "locked" and refused.locked_until == locking.locked_until
    later = _try(session, user.email, TEST_PASSWORD, now + timedelta(minutes=LOCK_MINUTES))
    assert later.outcome == "ok"


def test_an_unknown_email_fails_without_saying_so_and_counts_against_the_address(
    session: Session, now: datetime
) -> None:
    attempt = _try(session, "nobody@example.org", "whatever", now)
    assert attempt.outcome == "failed" and attempt.user is None
    logged = session.scalars(select(AuditLog)).one()
    assert logged.action == "login.failed" and logged.detail == {"address": ADDRESS}


def test_too_many_failures_from_one_address_throttle_it_for_the_window_only(
    session: Session, now: datetime
) -> None:
    user = make_user(session, now)
    for n in range(MAX_FAILED_PER_ADDRESS):
        _try(session, f"stranger{n}@example.org", "wrong", now)
    assert _try(session, user.email, TEST_PASSWORD, now).outcome == "throttled"
    # Another address is not held back, and the window passes.
    assert _try(session, user.email, TEST_PASSWORD, now, "198.51.100.7").outcome == "ok"
    after = now + timedelta(minutes=ADDRESS_WINDOW_MINUTES, seconds=1)
    assert _try(session, user.email, TEST_PASSWORD, after).outcome == "ok"


def test_an_inactive_account_cannot_sign_in_even_with_its_password(
    session: Session, now: datetime
) -> None:
    user = make_user(session, now, active=False)
    attempt = _try(session, user.email, TEST_PASSWORD, now)
    assert attempt.outcome == "failed" and user.failed_logins == 0


def test_concurrent_wrong_passwords_never_check_more_than_the_limit(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    """Ten guesses at once: one conditional UPDATE per guess takes a try before its password is
    checked, so five are checked (and lock the account) and five are refused unchecked."""
    with sessions() as setup:
        user = make_user(setup, now)
        setup.commit()
        email, user_id = user.email, user.id
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def guess(n: int) -> None:
        with sessions() as session:
            barrier.wait()
            attempt = attempt_login(
                session, email=email, password=f"wrong {n}", address=f"192.0.2.{n}", now=now
            )
            session.commit()
            with lock:
                outcomes.append(attempt.outcome)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["failed"] * MAX_FAILED_LOGINS + ["locked"] * 5
    with sessions() as check:
        locked = check.get(User, user_id)
        assert locked is not None and locked.locked_until == now + timedelta(minutes=LOCK_MINUTES)
        actions = check.scalars(select(AuditLog.action).where(AuditLog.user_id == user_id)).all()
        assert sorted(actions) == ["login.failed"] * MAX_FAILED_LOGINS + ["login.locked"] * 5
        # The right password is refused, unchecked, while the lock lasts.
        assert _try(check, email, TEST_PASSWORD, now).outcome == "locked"


def test_a_deactivated_or_locked_account_takes_no_try(session: Session, now: datetime) -> None:
    inactive = make_user(session, now, active=False)
    assert _try(session, inactive.email, "wrong", now).outcome == "failed"
    assert inactive.failed_logins == 0
    locked = make_user(session, now, locked_until=now + timedelta(minutes=3))
    assert _try(session, locked.email, "wrong", now).outcome == "locked"
    assert locked.failed_logins == 0
