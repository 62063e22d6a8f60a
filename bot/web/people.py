"""Enrolment in the dashboard, for coordinators and admins (coaches get 403, as on every
coordinator page): /participants/new, the edit form on /participants/<id>, reassigning one or
many to a coach, closing with a reason and reopening. The workflow is
bot.services.participants_editing; these views read the form, call it and say what happened."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.models import Participant
from bot.services import participants_editing as editing
from bot.services import unknown_numbers as unknown
from bot.services.caseload import visible_participants

from .auth import current_staff, roles_required
from .context import db, state, utcnow
from .participants import _detail_page, participant_or_404, people_form

bp = Blueprint("people", __name__)
EDITORS = ("coordinator", "admin")


def _form() -> dict[str, str]:
    return {name: request.form.get(name, "") for name in editing.FIELDS}


def _new_page(
    values: dict[str, str], errors: dict[str, str], from_message: int | None, status: int
) -> tuple[str, int]:
    number = None
    if from_message is not None:
        number, _owner = unknown.from_message(db(), from_message)
    return (
        render_template(
            "participant_new.html",
            title="Add a participant",
            form=people_form(values, errors),
            from_message=from_message if number is not None else None,
            number=number,
        ),
        status,
    )


def _from_message() -> int | None:
    raw = request.values.get("from_message", "")
    return int(raw) if raw.isdigit() else None


@bp.get("/participants/new")
@roles_required(*EDITORS)
def new() -> ResponseReturnValue:
    values = {name: "" for name in editing.FIELDS}
    values.update(channel="sms", language="en", timezone=state().config.program_timezone)
    from_message = _from_message()
    if from_message is not None:
        # Enrolling an unknown number: the form starts with its phone and channel.
        number, owner = unknown.from_message(db(), from_message)
        if owner is not None:
            return redirect(url_for("participants.detail", participant_id=owner))
        if number is None:
            abort(404)
        values.update(phone=number.phone or "", channel=number.channel)
    return _new_page(values, {}, from_message, 200)


@bp.post("/participants/new")
@roles_required(*EDITORS)
def create() -> ResponseReturnValue:
    session = db()
    now = utcnow()
    form = _form()
    from_message = _from_message()
    try:
        values = editing.check_form(
            session, form, default_timezone=state().config.program_timezone, now=now
        )
    except editing.ParticipantInvalid as invalid:
        return _new_page(form, invalid.errors, from_message, 422)
    number = None
    if from_message is not None:
        number, _owner = unknown.from_message(session, from_message)
    participant = editing.create_participant(
        session, values, now=now, user_id=current_staff().id, planner=state().planner
    )
    if number is not None and number.phone == participant.phone:
        unknown.adopt(
            session, number, participant, now=now, user_id=current_staff().id, how="enrolled"
        )
    session.commit()
    flash(
        f"{participant.display_name} is enrolled ({participant.external_id}). "
        "Their welcome text is planned below.",
        "success",
    )
    return redirect(url_for("participants.detail", participant_id=participant.id))


@bp.post("/participants/<int:participant_id>/edit")
@roles_required(*EDITORS)
def edit(participant_id: int) -> ResponseReturnValue:
    session = db()
    participant = participant_or_404(participant_id)
    form = _form()
    try:
        values = editing.check_form(
            session,
            form,
            default_timezone=state().config.program_timezone,
            participant=participant,
            now=utcnow(),
        )
    except editing.ParticipantInvalid as invalid:
        return _detail_page(participant, edit_values=form, edit_errors=invalid.errors), 422
    changes = editing.edit_participant(
        session,
        participant,
        values,
        now=utcnow(),
        user_id=current_staff().id,
        planner=state().planner,
    )
    session.commit()
    if not changes:
        flash("Nothing changed.", "info")
    elif any(key in editing.PLAN_FIELDS for key in changes):
        flash("Saved. Their texts are planned again: see what is coming up.", "success")
    elif "consent" in changes:
        flash("Saved. How they consented is recorded in their consent history.", "success")
    else:
        flash("Saved.", "success")
    return redirect(url_for("participants.detail", participant_id=participant.id) + "#edit")


@bp.post("/participants/reassign")
@roles_required(*EDITORS)
def reassign() -> WerkzeugResponse:
    session = db()
    ids = [int(v) for v in request.form.getlist("ids") if v.isdigit()]
    back = request.form.get("back", "")
    target = back if back.startswith("/participants") else url_for("participants.index")
    if not ids:
        flash("Tick at least one person to reassign.", "error")
        return redirect(target)
    raw_coach = request.form.get("coach_id", "")
    people = list(
        session.scalars(
            visible_participants(current_staff(), session).where(Participant.id.in_(ids))
        )
    )
    try:
        moved = editing.reassign(
            session,
            people,
            int(raw_coach) if raw_coach.isdigit() else None,
            now=utcnow(),
            user_id=current_staff().id,
        )
    except editing.ParticipantInvalid as invalid:
        flash(f"Coach: {invalid.errors.get('coach_id', 'choose someone')}.", "error")
        return redirect(target)
    session.commit()
    noun = "person" if moved == 1 else "people"
    flash(f"Reassigned {moved} {noun}." if moved else "Nobody changed coach.", "success")
    return redirect(target)


@bp.post("/participants/<int:participant_id>/close")
@roles_required(*EDITORS)
def close(participant_id: int) -> ResponseReturnValue:
    session = db()
    participant = participant_or_404(participant_id)
    try:
        closed = editing.close_participant(
            session,
            participant,
            request.form.get("reason", ""),
            now=utcnow(),
            user_id=current_staff().id,
        )
    except editing.ParticipantInvalid as invalid:
        session.rollback()
        return _detail_page(participant, close_error=invalid.errors.get("reason")), 422
    except editing.ChangeRefused as refused:
        flash(str(refused), "info")
        return redirect(url_for("participants.detail", participant_id=participant.id))
    session.commit()
    n = closed.texts_cancelled
    flash(
        f"Closed. No more texts go to {participant.first_name}: "
        f"{n} planned text{'s' if n != 1 else ''} cancelled. The history is kept.",
        "success",
    )
    return redirect(url_for("participants.detail", participant_id=participant.id))


@bp.post("/participants/<int:participant_id>/reopen")
@roles_required(*EDITORS)
def reopen(participant_id: int) -> WerkzeugResponse:
    session = db()
    participant = participant_or_404(participant_id)
    try:
        status = editing.reopen_participant(
            session, participant, now=utcnow(), user_id=current_staff().id, planner=state().planner
        )
    except editing.ChangeRefused as refused:
        flash(str(refused), "info")
        return redirect(url_for("participants.detail", participant_id=participant.id))
    session.commit()
    if status == "opted_out":
        flash("Reopened. They had opted out, so no texts go until they text START.", "success")
    else:
        flash("Reopened. Their texts are planned from now on.", "success")
    return redirect(url_for("participants.detail", participant_id=participant.id))
