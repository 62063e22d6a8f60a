"""/unknown/<message id>: the conversation of a number no participant has, found through one
of its texts (so no phone number is ever in a URL or a server log). Coordinators and admins
read it, reply, enrol the number (the new-participant form, prefilled) or link it to a
participant whose number changed. The workflow is bot.services.unknown_numbers."""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.models import User
from bot.services import unknown_numbers as unknown
from bot.services.conversation import MAX_REPLY_CHARS, ChangeError

from .auth import current_staff, roles_required
from .context import db, state, utcnow

bp = Blueprint("unknown", __name__)
EDITORS = ("coordinator", "admin")


def _number_or_redirect(message_id: int) -> unknown.UnknownNumber | WerkzeugResponse:
    number, owner = unknown.from_message(db(), message_id)
    if owner is not None:
        # Enrolled or linked since: the texts are in that person's conversation now.
        return redirect(url_for("participants.detail", participant_id=owner) + "#thread-end")
    if number is None:
        abort(404)
    return number


def _page(
    message_id: int,
    number: unknown.UnknownNumber,
    *,
    reply_body: str = "",
    reply_error: str | None = None,
    link_value: str = "",
    link_error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    session = db()
    thread = unknown.thread(session, number)
    staff_names = {
        u.id: u.name
        for u in session.scalars(
            select(User).where(User.id.in_({e.sent_by for e in thread if e.sent_by}))
        )
    }
    return (
        render_template(
            "unknown.html",
            title=f"Unknown number {number.masked}",
            message_id=message_id,
            number=number,
            thread=thread,
            staff_names=staff_names,
            flag=unknown.open_flag(session, number),
            waiting_since=unknown.waiting_since(session, number),
            stopped=unknown.said_stop(session, number),
            zone=state().config.program_timezone,
            now=utcnow(),
            reply_key=secrets.token_urlsafe(12),
            reply_body=reply_body,
            reply_error=reply_error,
            link_value=link_value,
            link_error=link_error,
            max_reply=MAX_REPLY_CHARS,
        ),
        status,
    )


def _audit_view(number: unknown.UnknownNumber) -> None:
    from .participants import audit

    audit("unknown.view", None, {"sender": number.masked})


@bp.get("/unknown/<int:message_id>")
@roles_required(*EDITORS)
def show(message_id: int) -> ResponseReturnValue:
    found = _number_or_redirect(message_id)
    if not isinstance(found, unknown.UnknownNumber):
        return found
    page = _page(message_id, found)
    _audit_view(found)
    db().commit()
    return page


@bp.post("/unknown/<int:message_id>/reply")
@roles_required(*EDITORS)
def reply(message_id: int) -> ResponseReturnValue:
    session = db()
    found = _number_or_redirect(message_id)
    if not isinstance(found, unknown.UnknownNumber):
        return found
    body = request.form.get("body", "")
    try:
        message = unknown.send_reply(
            session,
            found,
            body=body,
            staff_user_id=current_staff().id,
            now=utcnow(),
            reply_key=request.form.get("reply_key", ""),
            may_override=True,
            send_anyway=request.form.get("send_anyway") == "yes",
        )
    except ChangeError as exc:
        session.rollback()
        return _page(message_id, found, reply_body=body, reply_error=str(exc), status=422)
    session.commit()
    count = f"{message.segments} text{'s' if message.segments != 1 else ''}"
    flash(f"Reply queued ({count}). It goes out now.", "thread-success")
    return redirect(url_for(".show", message_id=message_id) + "#thread-end")


@bp.post("/unknown/<int:message_id>/link")
@roles_required(*EDITORS)
def link(message_id: int) -> ResponseReturnValue:
    session = db()
    found = _number_or_redirect(message_id)
    if not isinstance(found, unknown.UnknownNumber):
        return found
    reference = request.form.get("participant", "")
    participant = unknown.find_participant(session, reference)
    if participant is None:
        return _page(
            message_id,
            found,
            link_value=reference,
            link_error=f"No participant with the ID {reference.strip()!r}."
            if reference.strip()
            else "Give the participant's ID, like P-00012.",
            status=422,
        )
    try:
        adopted = unknown.link_to_participant(
            session,
            found,
            participant,
            now=utcnow(),
            user_id=current_staff().id,
            planner=state().planner,
        )
    except ChangeError as exc:
        session.rollback()
        return _page(message_id, found, link_value=reference, link_error=str(exc), status=422)
    session.commit()
    texts = f"{adopted.texts} text{'s' if adopted.texts != 1 else ''}"
    flash(
        f"Linked: this is {participant.display_name}'s number now (the old one is kept in "
        f"their history), and its {texts} are in their conversation.",
        "success",
    )
    return redirect(url_for("participants.detail", participant_id=participant.id))
