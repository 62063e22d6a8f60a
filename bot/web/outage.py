"""The dashboard during a database outage: a clear 503 page, never a 500 (issue 17.3).

The web app's sessions give up after a few seconds (bot.db.WEB_TIMEOUTS); the error that
follows (cannot connect, a statement or lock timeout, no pooled connection free) is answered
here with a page that needs nothing from the database (not base.html, whose menu counts the
inbox and whose banner reads the worker's heartbeat). The webhooks and /healthz handle their
own database errors before this.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, render_template, request
from flask_login import AnonymousUserMixin
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.log import log_event

from .context import close_db

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30


def unavailable(error: Exception) -> tuple[Response | str, int, dict[str, str]]:
    close_db()  # its connection is broken: give it back now
    # Flask-Login's template context loads the signed-in user, from the database: not now.
    g._login_user = AnonymousUserMixin()
    log_event(
        log,
        "web.database_unavailable",
        level=logging.ERROR,
        path=request.path,
        error=type(error).__name__,
    )
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.accept_mimetypes.best == "application/json":
        return jsonify(error="database unavailable"), 503, headers
    return render_template("unavailable.html"), 503, headers


def init_app(app: Flask) -> None:
    for error in (OperationalError, InterfaceError, PoolTimeout):
        app.register_error_handler(error, unavailable)
