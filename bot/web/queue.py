"""The home page: the flagged queue, and the JSON it polls to stay current without a reload."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template

from bot.services.queue import load_queue, time_since

from .auth import current_staff
from .context import db, utcnow

bp = Blueprint("queue", __name__)
POLL_SECONDS = 15


@bp.get("/")
def index() -> str:
    now = utcnow()
    queue = load_queue(db(), current_staff())
    return render_template(
        "queue.html",
        title="Queue",
        queue=queue,
        now=now,
        time_since=time_since,
        poll_seconds=int(current_app.config.get("QUEUE_POLL_SECONDS", POLL_SECONDS)),
    )


@bp.get("/api/queue")
def queue_json() -> Response:
    now = utcnow()
    return jsonify(load_queue(db(), current_staff()).as_json(now))
