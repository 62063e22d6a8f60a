"""/flags/<id>: one flag, its history, acknowledge and resolve (caseload only, audited)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.log import mask_phone
from bot.models import Flag, InboundMessage, Participant, User
from bot.services import conversation as conv
from bot.services.caseload import get_visible_flag
from bot.services.flags import OUTCOMES, FlagStateError, acknowledge_flag, resolve_flag
from bot.services.queue import reason_label

from .auth import current_staff
from .context import db, utcnow
from .participants import OUTCOME_LABELS, audit

bp = Blueprint("flags", __name__)
MAX_NOTE_CHARS = 2000


def flag_or_404(flag_id: int) -> Flag:
    flag = get_visible_flag(db(), current_staff(), flag_id)
    if flag is None:
        abort(404)
    return flag


def _back(flag: Flag) -> WerkzeugResponse:
    if request.form.get("back") == "participant" and flag.participant_id is not None:
        return redirect(f"/participants/{flag.participant_id}#flag-{flag.id}")
    return redirect(f"/flags/{flag.id}")


@bp.get("/flags/<int:flag_id>")
def detail(flag_id: int) -> str:
    session = db()
    flag = flag_or_404(flag_id)
    participant = session.get(Participant, flag.participant_id) if flag.participant_id else None
    events = conv.flag_events(session, flag)
    actor_ids = {e.actor_user_id for e in events if e.actor_user_id}
    actor_ids |= {i for i in (flag.acknowledged_by_id, flag.resolved_by_id) if i}
    names = {u.id: u.name for u in session.scalars(select(User).where(User.id.in_(actor_ids)))}
    messages = []
    if participant is None and flag.sender_address:
        messages = list(
            session.scalars(
                select(InboundMessage)
                .where(
                    InboundMessage.from_address == flag.sender_address,
                    InboundMessage.participant_id.is_(None),
                )
                .order_by(InboundMessage.received_at.desc())
                .limit(20)
            )
        )
    trigger = (
        session.get(InboundMessage, flag.trigger_message_id) if flag.trigger_message_id else None
    )
    audit("flag.view", flag.participant_id, {"flag_id": flag.id})
    session.commit()
    return render_template(
        "flag.html",
        title="Flag",
        flag=flag,
        participant=participant,
        sender_masked=mask_phone(flag.sender_address),
        events=events,
        names=names,
        messages=messages,
        trigger=trigger,
        reason_label=reason_label,
        outcomes=[(o, OUTCOME_LABELS.get(o, o)) for o in OUTCOMES],
        zone=participant.timezone if participant else None,
    )


@bp.post("/flags/<int:flag_id>/acknowledge")
def acknowledge(flag_id: int) -> WerkzeugResponse:
    flag = flag_or_404(flag_id)
    try:
        acknowledge_flag(db(), flag, user_id=current_staff().id, now=utcnow())
    except FlagStateError:
        flash("This flag was already acknowledged.", "info")
        return _back(flag)
    audit("flag.acknowledge", flag.participant_id, {"flag_id": flag.id})
    db().commit()
    flash("Acknowledged: nobody else will be paged about it.", "success")
    return _back(flag)


@bp.post("/flags/<int:flag_id>/resolve")
def resolve(flag_id: int) -> WerkzeugResponse:
    flag = flag_or_404(flag_id)
    outcome = request.form.get("outcome", "")
    note = request.form.get("note", "").strip()[:MAX_NOTE_CHARS] or None
    if outcome not in OUTCOMES:
        flash("Choose what happened before resolving.", "error")
        return _back(flag)
    if outcome == "other" and not note:
        flash("Say what happened in the note when you choose 'Other'.", "error")
        return _back(flag)
    try:
        resolve_flag(
            db(), flag, outcome=outcome, note=note, now=utcnow(), user_id=current_staff().id
        )
    except FlagStateError:
        flash("This flag was already resolved.", "info")
        return _back(flag)
    audit("flag.resolve", flag.participant_id, {"flag_id": flag.id, "outcome": outcome})
    db().commit()
    if flag.reason == "crisis":
        flash("Resolved. Their check-ins resume with the next pass.", "success")
    else:
        flash("Resolved. Thank you.", "success")
    return _back(flag)
