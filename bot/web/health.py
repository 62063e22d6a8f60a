"""GET /healthz: the app answers and the database is reachable."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .context import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    try:
        db().execute(text("SELECT 1"))
    except SQLAlchemyError:
        return jsonify(status="error", db="unreachable"), 503
    return jsonify(status="ok", db="ok"), 200
