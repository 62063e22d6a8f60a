"""The Flask application factory's body (bot.create_app imports this lazily)."""

from __future__ import annotations

import secrets

from flask import Flask

from bot.config import Config, load_config
from bot.db import WEB_TIMEOUTS, make_engine, make_session_factory
from bot.log import configure_logging
from bot.transport.base import Transport
from bot.transport.factory import make_transport
from scheduler.plan import plan

from . import (
    admin,
    auth,
    consent_evidence,
    flags,
    health,
    imports,
    input_guard,
    ladder_banner,
    message_templates,
    numbers,
    outage,
    participants,
    people,
    program_settings,
    queue,
    reports,
    simulator,
    staff,
    unknown,
    webhook,
)
from .context import AppState, close_db


def build_app(config: Config | None = None, transport: Transport | None = None) -> Flask:
    config = config or load_config()
    configure_logging(config.log_level)
    if config.testing or config.demo:
        secret_key = config.secret_key or secrets.token_hex(32)
    else:
        secret_key = config.require_secret_key()  # raises ConfigError naming SECRET_KEY
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(
        SECRET_KEY=secret_key,
        TESTING=config.testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.public_base_url.startswith("https://"),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    engine = make_engine(config.database_url, timeouts=WEB_TIMEOUTS)
    app.extensions["checkin"] = AppState(
        config=config,
        engine=engine,
        sessions=make_session_factory(engine),
        transport=transport or make_transport(config),
        # The factory is where the layers meet: services never import the scheduler, so the
        # settings page and participant editing are handed the planner here.
        planner=plan,
    )
    app.teardown_appcontext(close_db)
    input_guard.init_app(app)  # before the blueprints: it bounds their <int:...> ids
    outage.init_app(app)
    ladder_banner.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhook.bp)
    auth.init_app(app)
    app.register_blueprint(queue.bp)
    app.register_blueprint(participants.bp)
    app.register_blueprint(consent_evidence.bp)  # before participants' /participants/<id>
    app.register_blueprint(people.bp)
    app.register_blueprint(unknown.bp)
    app.register_blueprint(flags.bp)
    app.register_blueprint(numbers.bp)
    app.register_blueprint(admin.bp)
    imports.init_app(app)
    app.register_blueprint(staff.bp)
    for coordinator_bp in (message_templates.bp, program_settings.bp, reports.bp, simulator.bp):
        app.register_blueprint(coordinator_bp)
    return app
