"""Per-app state and the per-request database session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.services.settings_editing import Planner
from bot.transport.base import Transport


@dataclass
class AppState:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    transport: Transport
    # Re-plans future contacts as of a moment (scheduler.plan.plan), for a settings change.
    planner: Planner | None = None


def state() -> AppState:
    value: AppState = current_app.extensions["checkin"]
    return value


def db() -> Session:
    """The request's session, created on first use and closed at the end of the request."""
    if "db_session" not in g:
        g.db_session = state().sessions()
    session: Session = g.db_session
    return session


def close_db(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()


def utcnow() -> datetime:
    """The web layer is where the clock is read; services get `now` passed in."""
    return datetime.now(UTC)
