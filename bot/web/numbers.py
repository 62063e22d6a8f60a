"""A participant's number after a `number_changed` flag: a coordinator confirms it or changes
it (bot/services/numbers.py keeps the old one and audits the change)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.services import numbers

from .auth import current_staff, roles_required
from .context import db, utcnow
from .participants import participant_or_404

bp = Blueprint("numbers", __name__)
EDITORS = ("coordinator", "admin")


def _back(participant_id: int) -> WerkzeugResponse:
    return redirect(
        url_for("participants.detail", participant_id=participant_id) + "#flags-heading"
    )


@bp.post("/participants/<int:participant_id>/number/confirm")
@roles_required(*EDITORS)
def confirm(participant_id: int) -> WerkzeugResponse:
    participant = participant_or_404(participant_id)
    session = db()
    numbers.confirm_number(
        session,
        participant,
        user_id=current_staff().id,
        now=utcnow(),
        note=request.form.get("note", ""),
    )
    session.commit()
    flash("Number confirmed. Check-ins and reminders resume.", "thread-success")
    return _back(participant.id)


@bp.post("/participants/<int:participant_id>/number/change")
@roles_required(*EDITORS)
def change(participant_id: int) -> WerkzeugResponse:
    participant = participant_or_404(participant_id)
    session = db()
    try:
        numbers.change_number(
            session,
            participant,
            request.form.get("phone", ""),
            user_id=current_staff().id,
            now=utcnow(),
            note=request.form.get("note", ""),
        )
    except numbers.NumberError as exc:
        session.rollback()
        flash(f"Number not changed: {exc}.", "error")
        return _back(participant.id)
    session.commit()
    flash("Number changed; the old one is kept in the history.", "thread-success")
    return _back(participant.id)
