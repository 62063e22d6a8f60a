"""The dashboard's banner for flags whose escalation reached nobody (issue 17.8): a ladder step
with nobody who can be texted (no phone, nobody at that step) is shown to coordinators and
admins on every page until someone acknowledges the flag (acknowledging ends its ladder)."""

from __future__ import annotations

from flask import Flask
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import exists, select
from sqlalchemy.exc import SQLAlchemyError

from bot.models import Flag, FlagEvent

from .context import db

NOBODY_REACHED = "nobody_reached"


def unreached_banner() -> Markup | None:
    if not (current_user.is_authenticated and current_user.role in ("coordinator", "admin")):
        return None
    try:
        ids = (
            db()
            .scalars(
                select(Flag.id)
                .where(
                    Flag.state == "open",
                    exists().where(FlagEvent.flag_id == Flag.id, FlagEvent.kind == NOBODY_REACHED),
                )
                .order_by(Flag.opened_at, Flag.id)
                .limit(50)
            )
            .all()
        )
    except SQLAlchemyError:
        return None
    if not ids:
        return None
    links = Markup(", ").join(
        Markup('<a href="/flags/{0}">flag {0}</a>').format(flag_id) for flag_id in ids[:5]
    )
    more = escape(f" and {len(ids) - 5} more") if len(ids) > 5 else ""
    return Markup(
        "Escalation reached nobody for {count} flag(s): no one at a ladder step has a phone to "
        "page. Open and acknowledge: {links}{more}."
    ).format(count=len(ids), links=links, more=more)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["unreached_banner"] = unreached_banner
