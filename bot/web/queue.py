"""The home page: urgent flags, conversations waiting for a reply, the other flags; the JSON it
polls to stay current without a reload; and "no reply needed" for a waiting conversation."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
)
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.models import InboundMessage
from bot.services import consent_evidence, inbox
from bot.services.audit import record
from bot.services.caseload import get_visible_participant, sees_everyone
from bot.services.queue import load_queue, time_since, waited

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
        detail={"flags_shown": len(queue.items), "waiting_shown": len(queue.waiting)},
    )
    db().commit()
    return render_template(
        "queue.html",
        title="Queue",
        queue=queue,
        now=now,
        time_since=time_since,
        waited=waited,
        # Coordinators record consent evidence: they see who is held for the lack of it.
        evidence_waiting=consent_evidence.waiting_count(db(), staff) if sees_everyone(staff) else 0,
        poll_seconds=int(current_app.config.get("QUEUE_POLL_SECONDS", POLL_SECONDS)),
    )


@bp.get("/api/queue")
def queue_json() -> Response:
    now = utcnow()
    return jsonify(load_queue(db(), current_staff()).as_json(now))


@bp.post("/inbox/<int:message_id>/no-reply-needed")
def no_reply_needed(message_id: int) -> WerkzeugResponse:
    """One click on a queue item: the conversation of this text (a participant's, or an unknown
    number's) needs no reply. Who and when are recorded on the texts and in the audit log."""
    session = db()
    staff = current_staff()
    message = session.get(InboundMessage, message_id)
    if message is None:
        abort(404)
    if message.participant_id is not None:
        if get_visible_participant(session, staff, message.participant_id) is None:
            abort(404)
        ended = inbox.end_wait(
            session,
            kind="no_reply_needed",
            user_id=staff.id,
            now=utcnow(),
            participant_id=message.participant_id,
        )
    else:
        if not sees_everyone(staff):
            abort(404)
        ended = inbox.end_wait(
            session,
            kind="no_reply_needed",
            user_id=staff.id,
            now=utcnow(),
            sender_address=message.from_address,
        )
    if ended.texts:
        record(
            session,
            now=utcnow(),
            action="inbox.no_reply_needed",
            actor="dashboard",
            user_id=staff.id,
            participant_id=message.participant_id,
            detail={"texts": ended.texts, "inbound_message_id": message.id},
        )
        session.commit()
        flash("Marked: no reply needed.", "success")
    else:
        flash("Nothing was waiting for a reply there any more.", "info")
    if request.form.get("back") == "unknown" and message.participant_id is None:
        return redirect(f"/unknown/{message.id}")
    return redirect("/")
