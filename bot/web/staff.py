"""Staff accounts (issue 18.3): an admin edits a user at /users/<id> and issues a one-time
reset link; everyone changes their own password at /account; a reset link opens
/reset/<token> (no sign-in needed). The logic is in bot/services/users.py and
bot/services/passwords.py; these views only read forms and draw pages."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.models import User
from bot.models.users import ROLES
from bot.services.passwords import (
    MIN_PASSWORD_LENGTH,
    RESET_VALID_FOR,
    PasswordError,
    change_password,
    complete_reset,
    issue_reset,
    reset_url,
    reset_user,
)
from bot.services.users import UserFormError, update_user

from .auth import current_staff, login_required, roles_required
from .context import db, state, utcnow

bp = Blueprint("staff", __name__)

Page = str | tuple[str, int]


def _user_or_404(user_id: int) -> User:
    user = db().get(User, user_id)
    if user is None:
        abort(404)
    return user


def _edit_page(
    user: User,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    reset_link: str | None = None,
    status: int = 200,
) -> Page:
    colleagues = (
        db()
        .scalars(select(User).where(User.id != user.id, User.active.is_(True)).order_by(User.name))
        .all()
    )
    values = values or {
        "name": user.name,
        "role": user.role,
        "phone": user.phone or "",
        "covering_user_id": str(user.covering_user_id or ""),
        "away": "yes" if user.away else "",
        "active": "yes" if user.active else "",
    }
    page = render_template(
        "user_edit.html",
        title=f"User {user.email}",
        user=user,
        values=values,
        errors=errors or {},
        roles=ROLES,
        colleagues=colleagues,
        reset_link=reset_link,
        reset_hours=int(RESET_VALID_FOR.total_seconds() // 3600),
        is_self=user.id == current_staff().id,
    )
    return page, status


@bp.get("/users/<int:user_id>")
@roles_required("admin")
def edit_user(user_id: int) -> Page:
    return _edit_page(_user_or_404(user_id))


@bp.post("/users/<int:user_id>")
@roles_required("admin")
def save_user(user_id: int) -> Page | WerkzeugResponse:
    session = db()
    user = _user_or_404(user_id)
    form = request.form
    values = {
        key: form.get(key, "").strip()
        for key in ("name", "role", "phone", "covering_user_id", "away", "active")
    }
    covering = values["covering_user_id"]
    if covering and not covering.isdigit():
        return _edit_page(
            user, values=values, errors={"covering_user_id": "choose a colleague"}, status=400
        )
    try:
        changed = update_user(
            session,
            user,
            by=current_staff().user,
            now=utcnow(),
            name=values["name"],
            role=values["role"],
            phone=values["phone"],
            covering_user_id=int(covering) if covering else None,
            away=values["away"] == "yes",
            active=values["active"] == "yes",
        )
    except UserFormError as exc:
        session.rollback()
        return _edit_page(user, values=values, errors=exc.errors, status=400)
    session.commit()
    if changed:
        flash(f"Saved {user.email}: {', '.join(changed).replace('_', ' ')}.", "success")
    else:
        flash("Nothing changed.", "success")
    return redirect(url_for("staff.edit_user", user_id=user.id))


@bp.post("/users/<int:user_id>/reset-link")
@roles_required("admin")
def issue_reset_link(user_id: int) -> Page:
    """The link is shown once, on this page's answer (never stored readable, never in a
    cookie), for the admin to hand to the user."""
    session = db()
    user = _user_or_404(user_id)
    try:
        issued = issue_reset(
            session, user, now=utcnow(), issued_by=current_staff().user, actor="dashboard"
        )
    except PasswordError as exc:
        session.rollback()
        flash(str(exc), "error")
        return _edit_page(user, status=400)
    session.commit()
    return _edit_page(user, reset_link=reset_url(state().config.public_base_url, issued.token))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> Page | WerkzeugResponse:
    staff = current_staff()
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        new = form.get("new_password", "")
        if new != form.get("new_password2", ""):
            errors["new_password2"] = "the two new passwords are not the same"
        else:
            session = db()
            try:
                change_password(
                    session,
                    staff.user,
                    current=form.get("current_password", ""),
                    new=new,
                    now=utcnow(),
                    keep_session_token=staff.token,
                )
            except PasswordError as exc:
                session.rollback()
                field, _, why = str(exc).partition(": ")
                errors[field.replace(" ", "_")] = why
            else:
                session.commit()
                flash(
                    "Your password is changed. Other browsers signed in as you are signed out.",
                    "success",
                )
                return redirect(url_for("staff.account"))
    page = render_template(
        "account.html",
        title="Your account",
        user=staff.user,
        errors=errors,
        min_length=MIN_PASSWORD_LENGTH,
    )
    return page, 400 if errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Page | WerkzeugResponse:
    """Public (the link is the credential): set a new password through a one-time link."""
    session = db()
    user = reset_user(session, token, utcnow())
    if user is None:
        session.rollback()
        page = render_template(
            "error.html",
            title="This link does not work",
            message="It has expired (links last one hour), was already used, or was replaced "
            "by a newer one. Ask your program's admin for a new link.",
        )
        return page, 404
    errors: dict[str, str] = {}
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("new_password2", ""):
            errors["new_password2"] = "the two passwords are not the same"
        else:
            try:
                complete_reset(session, token, new=new, now=utcnow())
            except PasswordError as exc:
                session.rollback()
                errors["new_password"] = str(exc).partition(": ")[2]
            else:
                session.commit()
                flash("Your new password is set. Sign in with it.", "success")
                return redirect(url_for("auth.login"))
    session.rollback()
    page = render_template(
        "reset.html",
        title="Set a new password",
        email=user.email,
        errors=errors,
        min_length=MIN_PASSWORD_LENGTH,
    )
    return page, 400 if errors else 200
