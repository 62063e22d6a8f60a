"""Staff accounts: creation and password hashing (argon2)."""

from __future__ import annotations

import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import User
from bot.models.users import ROLES
from bot.phones import PhoneError, normalize_phone

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserError(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email.strip().lower())).first()


def create_user(
    session: Session,
    *,
    email: str,
    role: str,
    password: str,
    now: datetime,
    name: str | None = None,
    phone: str | None = None,
) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError(f"email: {email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    check_password_strength(password)
    if session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise UserError(f"email: a user with {email} already exists")
    normalized_phone = None
    if phone:
        try:
            normalized_phone = normalize_phone(phone)
        except PhoneError as exc:
            raise UserError(f"phone: {exc}") from None
    user = User(
        email=email,
        name=(name or email.split("@")[0]).strip(),
        phone=normalized_phone,
        role=role,
        password_hash=hash_password(password),
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user
