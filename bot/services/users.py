"""Staff accounts: creating and editing them (passwords: bot/services/passwords.py)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import User
from bot.models.users import ROLES
from bot.phones import PhoneError, normalize_phone
from bot.services.audit import record
from bot.services.passwords import MIN_PASSWORD_LENGTH as MIN_PASSWORD_LENGTH
from bot.services.passwords import PasswordError, check_new_password
from bot.services.passwords import hash_password as hash_password
from bot.services.passwords import verify_password as verify_password
from bot.services.staff_sessions import end_sessions

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserError(ValueError):
    pass


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
    try:
        check_new_password(password, email=email, name=name or "")
    except PasswordError as exc:
        raise UserError(f"password: {exc}") from None
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


class UserFormError(UserError):
    """Several fields are wrong: `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {why}" for field, why in errors.items()))
        self.errors = errors


def update_user(
    session: Session,
    user: User,
    *,
    by: User,
    now: datetime,
    name: str,
    role: str,
    phone: str,
    covering_user_id: int | None,
    away: bool,
    active: bool,
) -> list[str]:
    """An admin (`by`) edits a staff account; returns the names of the fields that changed
    (audited as `user.update`). Raises UserFormError naming every wrong field, changing
    nothing. Admins cannot change their own role or deactivate themselves (another admin
    must), so a program always keeps an admin. Deactivating ends the user's sign-ins."""
    errors: dict[str, str] = {}
    name = " ".join(name.split())
    if not name:
        errors["name"] = "enter a name"
    elif len(name) > 120:
        errors["name"] = "at most 120 characters"
    if role not in ROLES:
        errors["role"] = f"{role!r} is not one of {', '.join(ROLES)}"
    elif user.id == by.id and role != user.role:
        errors["role"] = "you cannot change your own role; ask another admin"
    normalized_phone: str | None = None
    if phone.strip():
        try:
            normalized_phone = normalize_phone(phone)
        except PhoneError as exc:
            errors["phone"] = str(exc)
    if covering_user_id is not None:
        cover = session.get(User, covering_user_id)
        if covering_user_id == user.id:
            errors["covering_user_id"] = "choose someone else to cover"
        elif cover is None or not cover.active:
            errors["covering_user_id"] = "choose an active colleague"
    if user.id == by.id and not active:
        errors["active"] = "you cannot deactivate yourself; ask another admin"
    if errors:
        raise UserFormError(errors)

    new_values = {
        "name": name,
        "role": role,
        "phone": normalized_phone,
        "covering_user_id": covering_user_id,
        "away": away,
        "active": active,
    }
    changed = [field for field, value in new_values.items() if getattr(user, field) != value]
    if not changed:
        return []
    detail: dict[str, object] = {"user_id": user.id, "changed": changed}
    for field in ("role", "covering_user_id", "away", "active"):
        if field in changed:
            detail[field] = new_values[field]
    for field, value in new_values.items():
        setattr(user, field, value)
    if "active" in changed and active:
        user.failed_logins = 0
        user.locked_until = None
    if "active" in changed and not active:
        end_sessions(session, user.id)
    record(session, now=now, action="user.update", actor="dashboard", user_id=by.id, detail=detail)
    session.flush()
    return changed
