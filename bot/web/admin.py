"""/users (admins create, deactivate and unlock staff) and /audit (admins read the log)."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.models import AuditLog, Participant, User
from bot.models.users import ROLES
from bot.services.audit import record
from bot.services.users import UserError, create_user
from bot.timeutil import local_datetime

from .auth import current_staff, roles_required
from .context import db, state, utcnow

bp = Blueprint("admin", __name__)
AUDIT_PAGE = 100


def _audit(action: str, detail: dict[str, Any]) -> None:
    record(
        db(),
        now=utcnow(),
        action=action,
        actor="dashboard",
        user_id=current_staff().id,
        detail=detail,
    )


@bp.get("/users")
@roles_required("admin")
def users() -> str:
    rows = db().scalars(select(User).order_by(User.active.desc(), User.role, User.name)).all()
    names = {u.id: u.name for u in rows}
    return render_template(
        "users.html", title="Users", users=rows, names=names, roles=ROLES, now=utcnow()
    )


@bp.post("/users")
@roles_required("admin")
def create() -> WerkzeugResponse | tuple[str, int]:
    session = db()
    form = request.form
    if form.get("password", "") != form.get("password2", ""):
        flash("The two passwords are not the same.", "error")
        return redirect(url_for("admin.users") + "#new-user")
    try:
        user = create_user(
            session,
            email=form.get("email", ""),
            role=form.get("role", ""),
            password=form.get("password", ""),
            name=form.get("name", "") or None,
            phone=form.get("phone", "") or None,
            now=utcnow(),
        )
    except UserError as exc:
        session.rollback()
        flash(str(exc).replace(": ", ": ", 1).capitalize(), "error")
        return redirect(url_for("admin.users") + "#new-user")
    _audit("user.create", {"user_id": user.id, "role": user.role})
    session.commit()
    flash(f"Created {user.email} ({user.role}). Give them their password in person.", "success")
    return redirect(url_for("admin.users"))


def _user_or_404(user_id: int) -> User:
    user = db().get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.post("/users/<int:user_id>/deactivate")
@roles_required("admin")
def deactivate(user_id: int) -> WerkzeugResponse:
    user = _user_or_404(user_id)
    if user.id == current_staff().id:
        flash("You cannot deactivate yourself; ask another admin.", "error")
        return redirect(url_for("admin.users"))
    if user.active:
        user.active = False
        _audit("user.deactivate", {"user_id": user.id})
        db().commit()
        flash(f"{user.email} can no longer sign in; their sessions have ended.", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/activate")
@roles_required("admin")
def activate(user_id: int) -> WerkzeugResponse:
    user = _user_or_404(user_id)
    if not user.active:
        user.active = True
        user.failed_logins = 0
        user.locked_until = None
        _audit("user.activate", {"user_id": user.id})
        db().commit()
        flash(f"{user.email} can sign in again.", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/unlock")
@roles_required("admin")
def unlock(user_id: int) -> WerkzeugResponse:
    user = _user_or_404(user_id)
    user.failed_logins = 0
    user.locked_until = None
    _audit("user.unlock", {"user_id": user.id})
    db().commit()
    flash(f"{user.email} is unlocked.", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/cover")
@roles_required("admin")
def cover(user_id: int) -> WerkzeugResponse:
    """Set who covers this coach's caseload (and whether they are away)."""
    user = _user_or_404(user_id)
    covering = request.form.get("covering_user_id", type=int)
    if covering is not None and (covering == user.id or db().get(User, covering) is None):
        flash("Choose someone else to cover.", "error")
        return redirect(url_for("admin.users"))
    user.covering_user_id = covering
    user.away = request.form.get("away") == "yes"
    _audit("user.cover", {"user_id": user.id, "covering_user_id": covering, "away": user.away})
    db().commit()
    flash("Cover saved.", "success")
    return redirect(url_for("admin.users"))


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@bp.get("/audit")
@roles_required("admin")
def audit_log() -> str:
    session = db()
    zone = state().config.zone
    args = request.args
    user_id = args.get("user", type=int)
    action = args.get("action", "").strip()
    participant_text = args.get("participant", "").strip()
    day_from, day_to = _parse_day(args.get("from")), _parse_day(args.get("to"))
    page = max(args.get("page", 1, type=int) or 1, 1)

    query = (
        select(AuditLog, User.email, Participant.external_id, Participant.first_name)
        .outerjoin(User, AuditLog.user_id == User.id)
        .outerjoin(Participant, AuditLog.participant_id == Participant.id)
    )
    if user_id:
        query = query.where(AuditLog.user_id == user_id)
    if action:
        query = query.where(AuditLog.action == action)
    if participant_text:
        pid = participant_text if participant_text.isdigit() else None
        matches = select(Participant.id).where(Participant.external_id == participant_text)
        if pid is not None:
            query = query.where(
                (AuditLog.participant_id == int(pid)) | AuditLog.participant_id.in_(matches)
            )
        else:
            query = query.where(AuditLog.participant_id.in_(matches))
    if day_from:
        query = query.where(AuditLog.at >= local_datetime(day_from, time(0), zone))
    if day_to:
        query = query.where(AuditLog.at < local_datetime(day_to + timedelta(days=1), time(0), zone))
    rows = session.execute(
        query.order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(AUDIT_PAGE + 1)
        .offset((page - 1) * AUDIT_PAGE)
    ).all()
    more = len(rows) > AUDIT_PAGE
    users = session.scalars(select(User).order_by(User.name)).all()
    actions = session.scalars(
        select(AuditLog.action).group_by(AuditLog.action).order_by(AuditLog.action)
    ).all()
    count = session.scalar(select(func.count()).select_from(AuditLog))
    return render_template(
        "audit.html",
        title="Audit log",
        rows=rows[:AUDIT_PAGE],
        more=more,
        page=page,
        users=users,
        actions=actions,
        count=count,
        filters={
            "user": user_id,
            "action": action,
            "participant": participant_text,
            "from": args.get("from", ""),
            "to": args.get("to", ""),
        },
        zone=state().config.program_timezone,
    )
