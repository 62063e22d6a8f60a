"""Passwords: what a new one must be, changing one's own, one-time reset links."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import AuditLog, PasswordReset, StaffSession
from bot.services.passwords import (
    RESET_VALID_FOR,
    PasswordError,
    change_password,
    check_new_password,
    common_passwords,
    complete_reset,
    issue_reset,
    reset_url,
    reset_user,
    verify_password,
)
from bot.services.staff_sessions import session_user, start_session
from tests.factories import TEST_PASSWORD, make_user

NEW = "plum kettle harbour 7"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short pass", "at least 12 characters"),
        ("qwerty123456", "most common"),
        ("Sunshine2024!!", "most common"),
        ("!!iloveyou!!2024", "most common"),
        ("aaaaaaaaaaaaaa", "repeats"),
        ("ana.smith@example.org", "your email or name"),
        ("ana.smith2024!", "your email or name"),
    ],
)
def test_a_weak_new_password_is_refused_with_the_reason(password: str, why: str) -> None:
    with pytest.raises(PasswordError, match=why):
        check_new_password(password, email="ana.smith@example.org", name="Ana Smith")


def test_a_long_uncommon_password_is_accepted() -> None:
    check_new_password(NEW, email="ana@example.org", name="Ana Smith")
    check_new_password(TEST_PASSWORD)


def test_the_common_list_is_the_shipped_ten_thousand() -> None:
    common = common_passwords()
    assert len(common) > 9_900
    assert {"password", "123456", "qwertyuiop"} <= common


def test_changing_ones_password_needs_the_current_one_and_ends_other_sign_ins(
    session: Session, now: datetime
) -> None:
    user = make_user(session, now)
    here = start_session(session, user, now)
    elsewhere = start_session(session, user, now)
    with pytest.raises(PasswordError, match="current password"):
        change_password(
            session, user, current="not it at all", new=NEW, now=now, keep_session_token=here
        )
    change_password(session, user, current=TEST_PASSWORD, new=NEW, now=now, keep_session_token=here)
    assert verify_password(user.password_hash, NEW)
    assert session_user(session, user.id, here, now) is user
    assert session_user(session, user.id, elsewhere, now) is None
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "password.change")).one()
    assert audit.detail == {"other_sessions_ended": 1}


def test_a_reset_link_works_once_within_the_hour_and_ends_every_sign_in(
    session: Session, now: datetime
) -> None:
    admin = make_user(session, now, role="admin")
    user = make_user(session, now, failed_logins=3, locked_until=now + timedelta(minutes=5))
    signed_in = start_session(session, user, now)
    issued = issue_reset(session, user, now=now, issued_by=admin, actor="dashboard")
    assert issued.expires_at == now + RESET_VALID_FOR
    # Only the digest is stored.
    stored = session.scalars(select(PasswordReset.token_hash)).one()
    assert issued.token not in stored and len(stored) == 64
    assert reset_user(session, issued.token, now) is user

    complete_reset(session, issued.token, new=NEW, now=now + timedelta(minutes=59))
    assert verify_password(user.password_hash, NEW)
    assert user.locked_until is None and user.failed_logins == 0
    assert session_user(session, user.id, signed_in, now) is None
    with pytest.raises(PasswordError, match="expired or was already used"):
        complete_reset(session, issued.token, new="another fine passphrase", now=now)
    actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["password.reset_issued", "password.reset"]


def test_a_reset_link_expires_after_an_hour_and_a_newer_one_replaces_it(
    session: Session, now: datetime
) -> None:
    user = make_user(session, now)
    first = issue_reset(session, user, now=now, issued_by=None, actor="cli:root")
    assert reset_user(session, first.token, now + RESET_VALID_FOR) is None
    second = issue_reset(session, user, now=now, issued_by=None, actor="cli:root")
    assert reset_user(session, first.token, now) is None
    assert reset_user(session, second.token, now) is user
    assert reset_user(session, "made-up-token", now) is None
    assert session.scalar(select(func.count()).select_from(PasswordReset)) == 1


def test_a_reset_link_refuses_a_weak_password_and_stays_usable(
    session: Session, now: datetime
) -> None:
    user = make_user(session, now)
    issued = issue_reset(session, user, now=now, issued_by=None, actor="cli:root")
    with pytest.raises(PasswordError, match="new password: must be at least 12"):
        complete_reset(session, issued.token, new="short", now=now)
    assert reset_user(session, issued.token, now) is user


def test_no_reset_link_for_a_deactivated_account(session: Session, now: datetime) -> None:
    user = make_user(session, now, active=False)
    with pytest.raises(PasswordError, match="deactivated"):
        issue_reset(session, user, now=now, issued_by=None, actor="cli:root")


def test_the_reset_url_is_under_the_public_base_url() -> None:
    assert (
        reset_url("https://checkin.example.org/", "abc") == "https://checkin.example.org/reset/abc"
    )


def test_sign_ins_older_than_the_limit_are_refused(session: Session, now: datetime) -> None:
    user = make_user(session, now)
    token = start_session(session, user, now - timedelta(days=31))
    assert session_user(session, user.id, token, now) is None
    start_session(session, user, now)
    # The stale one was pruned by the new sign-in.
    assert session.scalar(select(func.count()).select_from(StaffSession)) == 1
