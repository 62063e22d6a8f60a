"""The home page: the flagged queue, and the JSON it polls to stay current without a reload."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template

from bot.services.audit import record
from bot.services.queue import load_queue, time_since

from .auth import current_staff
from .context import db, utcnow

bp = Blueprint("queue", __name__)
POLL_SECONDS = 15


@bp.get("/")
def index() -> str:
    now = utcnow()
    staff = current_staff()
    queue = load_queue(db(), staff)
    # Opening the queue shows names and message previews, so it is audited; the polls that
    # refresh it every few seconds are not (they would bury everything else in the log).
    record(
        db(),
        now=now,
        action="queue.view",
        actor="dashboard",
        user_id=staff.id,
        detail={"flags_shown": len(queue.items)},
    )
    db().commit()
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
