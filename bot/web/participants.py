"""/participants (search, caseload only) and /participants/<id>: the conversation view and the
coach's actions on one person. Every query goes through the caseload filter; someone outside it
is answered 404. Every view and every action writes an audit row."""

from __future__ import annotations

import io
import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from bot.models import Appointment, Participant, User
from bot.models.appointments import KINDS as APPOINTMENT_KINDS
from bot.services import coach_reply, inbox, numbers
from bot.services import conversation as conv
from bot.services import participant_list as plist
from bot.services import participants_editing as editing
from bot.services.audit import record
from bot.services.caseload import get_visible_participant
from bot.services.consent import Evidence, consent_history, latest_evidence
from bot.services.csv_export import SafeWriter
from bot.services.flags import OUTCOMES
from bot.services.locations import check_place, location_policy, neutral_place, withheld_words
from bot.services.queue import reason_label, time_since

from .auth import current_staff
from .context import db, state, utcnow

bp = Blueprint("participants", __name__)
PAGE_SIZE = 50
COMMON_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
)
OUTCOME_LABELS = {
    "reached": "Reached them",
    "rescheduled": "Rescheduled",
    "referred": "Referred to help",
    "no_action_needed": "No action needed",
    "could_not_reach": "Could not reach them",
    "other": "Other (say in the note)",
}


def audit(action: str, participant_id: int | None, detail: dict[str, Any] | None = None) -> None:
    record(
        db(),
        now=utcnow(),
        action=action,
        actor="dashboard",
        user_id=current_staff().id,
        participant_id=participant_id,
        detail=detail,
    )


def participant_or_404(participant_id: int) -> Participant:
    """The participant, when in the logged-in user's caseload; 404 as if absent otherwise."""
    participant = get_visible_participant(db(), current_staff(), participant_id)
    if participant is None:
        abort(404)
    return participant


@bp.get("/participants")
def index() -> str:
    session = db()
    staff = current_staff()
    q = request.args.get("q", "")
    state = request.args.get("status", "")
    coach = request.args.get("coach", "")
    sort = request.args.get("sort", "name")
    sort = sort if sort in plist.SORTS else "name"
    page = plist.list_participants(
        session,
        staff,
        now=utcnow(),
        q=q,
        state=state,
        coach=coach,
        sort=sort,
        page=max(request.args.get("page", 1, type=int) or 1, 1),
    )
    # The list shows names: a search or a page of it is a view worth recording.
    if q:
        audit("participants.search", None, {"query": q[:80], "results": page.total})
    else:
        audit("participants.list", None, {"page": page.page, "results": page.total})
    session.commit()
    return render_template(
        "participants.html",
        title="Participants",
        rows=page.rows,
        total=page.total,
        q=q,
        status=state,
        coach=coach,
        sort=sort,
        page=page.page,
        pages=page.pages,
        states=plist.STATES,
        sorts=plist.SORTS,
        coach_filter=plist.coach_filter_choices(session, staff),
        no_coach=plist.NO_COACH,
        coaches=editing.coach_choices(session) if staff.sees_everyone else [],
        now=utcnow(),
    )


@bp.get("/participants.csv")
def export() -> Response:
    """The caseload as CSV (the same SQL filter as the list)."""
    rows = (
        db().execute(plist.filtered(db(), current_staff()).order_by(Participant.external_id)).all()
    )
    out = io.StringIO()
    writer = SafeWriter(out)  # a name like "=HYPERLINK(...)" must not run in a spreadsheet
    writer.writerow(
        ["external_id", "first_name", "phone", "status", "language", "timezone", "coach"]
    )
    for row in rows:
        p: Participant = row.Participant
        writer.writerow(
            [
                p.external_id,
                p.first_name,
                p.phone,
                p.status,
                p.language,
                p.timezone,
                row.coach_name or "",
            ]
        )
    audit("participants.export", None, {"rows": len(rows)})
    db().commit()
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=participants.csv"},
    )


@bp.get("/participants/<int:participant_id>")
def detail(participant_id: int) -> str:
    participant = participant_or_404(participant_id)
    before = None
    before_arg = request.args.get("before")
    if before_arg:
        try:
            before = datetime.fromisoformat(before_arg)
        except ValueError:
            abort(400)
        if before.tzinfo is None:
            abort(400)
    page = _detail_page(participant, before=before)
    audit("participant.view", participant.id)
    db().commit()
    return page


def _detail_page(
    participant: Participant,
    *,
    before: datetime | None = None,
    reply_body: str = "",
    reply_error: str | None = None,
    reply_when: str | None = None,
    edit_values: dict[str, str] | None = None,
    edit_errors: dict[str, str] | None = None,
    close_error: str | None = None,
) -> str:
    """The conversation page; after a refused reply, with the typed text and the reason; after
    a refused edit or close (coordinators), with the typed values and the reasons."""
    session = db()
    now = utcnow()
    staff = current_staff()
    thread, more = conv.load_thread(session, participant, before=before)
    appointments = conv.appointments_for(session, participant, now)
    open_flags, resolved_flags = conv.flags_for(session, participant)
    coach = session.get(User, participant.coach_id) if participant.coach_id else None
    staff_names = {
        u.id: u.name
        for u in session.scalars(
            select(User).where(User.id.in_({e.sent_by for e in thread if e.sent_by}))
        )
    }
    timing = coach_reply.reply_timing(session, participant, now)
    return render_template(
        "participant.html",
        title=participant.first_name,
        p=participant,
        coach=coach,
        thread=thread,
        more=more,
        open_flags=open_flags,
        resolved_flags=resolved_flags,
        appointments=appointments,
        withheld=withheld_words(session, appointments),
        neutral_place=neutral_place(participant.language),
        consent=consent_history(session, participant),
        contacts=conv.upcoming_contacts(session, participant, now),
        timing=timing,
        hold=conv.automation_hold(session, participant, now),
        waiting_since=inbox.is_waiting(session, participant.id),
        now=now,
        staff_names=staff_names,
        reply_key=secrets.token_urlsafe(12),
        reply_body=reply_body,
        reply_error=reply_error,
        reply_when=reply_when or coach_reply.SEND_MORNING,
        outcomes=[(o, OUTCOME_LABELS.get(o, o)) for o in OUTCOMES],
        appointment_kinds=APPOINTMENT_KINDS,
        common_zones=COMMON_ZONES,
        reason_label=reason_label,
        max_reply=conv.MAX_REPLY_CHARS,
        time_since=time_since,
        enrolment=editing.enrolment_history(session, participant),
        phone_history=editing.phone_history(session, participant) if staff.sees_everyone else [],
        edit=(
            people_form(
                edit_values or editing.form_values(participant),
                edit_errors or {},
                evidence=latest_evidence(session, participant.id),
                existing=True,
            )
            if staff.sees_everyone
            else None
        ),
        close_error=close_error,
    )


def people_form(
    values: dict[str, str],
    errors: dict[str, str],
    *,
    evidence: Evidence | None = None,
    existing: bool = False,
) -> dict[str, Any]:
    """What the participant form's template needs (the new-participant page and the edit form
    on the conversation page share it): values, errors and the choices of each list; for an
    `existing` person, the consent evidence on file."""
    session = db()
    zones = list(COMMON_ZONES)
    for zone in (values.get("timezone"), state().config.program_timezone):
        if zone and zone not in zones:
            zones.append(zone)
    return {
        "values": values,
        "errors": errors,
        "zones": zones,
        "coaches": editing.coach_choices(session),
        "evidence": evidence,
        "existing": existing,
    }


def _back(participant: Participant, anchor: str = "") -> WerkzeugResponse:
    return redirect(url_for("participants.detail", participant_id=participant.id) + anchor)


@bp.post("/participants/<int:participant_id>/reply")
def reply(participant_id: int) -> ResponseReturnValue:
    session = db()
    now = utcnow()
    staff = current_staff()
    participant = participant_or_404(participant_id)
    body = request.form.get("body", "")
    when = request.form.get("when") or None
    if request.form.get("number_ok") != "yes" and numbers.open_flag(session, participant.id):
        # The number may belong to someone else now: the form warned, the sender must say so.
        error = "This number may belong to someone else now: tick 'Send to this number anyway'."
        return _detail_page(participant, reply_body=body, reply_error=error, reply_when=when), 422
    try:
        queued = coach_reply.send_staff_reply(
            session,
            participant,
            body=body,
            staff_user_id=staff.id,
            reply_key=request.form.get("reply_key", ""),
            now=now,
            when=when,
            may_override=staff.sees_everyone,
            send_anyway=request.form.get("send_anyway") == "yes",
        )
    except conv.ChangeError as exc:
        session.rollback()
        # The typed text stays in the box and the reason is shown next to it.
        page = _detail_page(participant, reply_body=body, reply_error=str(exc), reply_when=when)
        return page, 422
    session.commit()
    segments = queued.message.segments
    count = f"{segments} text{'s' if segments != 1 else ''}"
    if queued.at_once:
        flash(f"Reply queued ({count}). It goes out now.", "thread-success")
    else:
        local = queued.sends_at.astimezone(ZoneInfo(participant.timezone))
        flash(
            f"Reply queued ({count}). It goes at {local:%-I:%M %p} their time, "
            "when their quiet hours end.",
            "thread-success",
        )
    return _back(participant, "#thread-end")


@bp.post("/participants/<int:participant_id>/no-reply-needed")
def no_reply_needed(participant_id: int) -> WerkzeugResponse:
    """One click: their waiting texts need no reply (who and when recorded, and audited)."""
    participant = participant_or_404(participant_id)
    now = utcnow()
    ended = inbox.end_wait(
        db(),
        kind="no_reply_needed",
        user_id=current_staff().id,
        now=now,
        participant_id=participant.id,
    )
    if ended.texts:
        audit("inbox.no_reply_needed", participant.id, {"texts": ended.texts})
        db().commit()
        flash("Marked: no reply needed. It has left the queue.", "thread-success")
    else:
        flash("Nothing was waiting for a reply.", "thread-info")
    if request.form.get("back") == "queue":
        return redirect(url_for("queue.index"))
    return _back(participant, "#thread-end")


@bp.post("/participants/<int:participant_id>/pause")
def pause(participant_id: int) -> WerkzeugResponse:
    return _set_paused(participant_id, True)


@bp.post("/participants/<int:participant_id>/resume")
def resume(participant_id: int) -> WerkzeugResponse:
    return _set_paused(participant_id, False)


def _set_paused(participant_id: int, paused: bool) -> WerkzeugResponse:
    participant = participant_or_404(participant_id)
    try:
        changed = conv.set_paused(participant, paused, utcnow())
    except conv.ChangeError as exc:
        flash(str(exc), "error")
        return _back(participant)
    if changed:
        audit("participant.pause" if paused else "participant.resume", participant.id)
        db().commit()
        flash(
            "Check-ins paused. Replies and reminders you send still go out."
            if paused
            else "Check-ins resumed.",
            "success",
        )
    return _back(participant)


@bp.post("/participants/<int:participant_id>/details")
def update_details(participant_id: int) -> WerkzeugResponse:
    participant = participant_or_404(participant_id)
    try:
        changes = conv.update_details(
            db(),
            participant,
            phone=request.form.get("phone", ""),
            timezone=request.form.get("timezone", ""),
            language=request.form.get("language", ""),
            now=utcnow(),
        )
    except conv.ChangeError as exc:
        db().rollback()
        flash(str(exc), "error")
        return _back(participant, "#details")
    if changes:
        audit("participant.edit", participant.id, {"changed": changes})
        db().commit()
        flash("Details saved. Upcoming texts are planned again.", "success")
    else:
        flash("Nothing changed.", "info")
    return _back(participant, "#details")


def _appointment_or_404(participant: Participant, appointment_id: int) -> Appointment:
    appointment = (
        db()
        .scalars(
            select(Appointment).where(
                Appointment.id == appointment_id, Appointment.participant_id == participant.id
            )
        )
        .first()
    )
    if appointment is None:
        abort(404)
    return appointment


@bp.post("/participants/<int:participant_id>/appointments")
def add_appointment(participant_id: int) -> WerkzeugResponse:
    participant = participant_or_404(participant_id)
    try:
        appointment = conv.add_appointment(
            db(),
            participant,
            kind=request.form.get("kind", ""),
            starts_local=request.form.get("starts_at", ""),
            location=request.form.get("location", ""),
            now=utcnow(),
        )
    except conv.ChangeError as exc:
        db().rollback()
        flash(str(exc), "error")
        return _back(participant, "#appointments")
    audit("appointment.add", participant.id, {"appointment_id": appointment.id})
    db().commit()
    flash("Appointment added; reminders will be planned.", "success")
    place = check_place(appointment.location, location_policy(db()))
    if place is not None:
        flash(f"Careful: its place “{appointment.location}” {place.message}.", "warning")
    return _back(participant, "#appointments")


@bp.post("/participants/<int:participant_id>/appointments/<int:appointment_id>/move")
def move_appointment(participant_id: int, appointment_id: int) -> WerkzeugResponse:
    participant = participant_or_404(participant_id)
    appointment = _appointment_or_404(participant, appointment_id)
    try:
        conv.move_appointment(
            appointment, participant, starts_local=request.form.get("starts_at", ""), now=utcnow()
        )
    except conv.ChangeError as exc:
        flash(str(exc), "error")
        return _back(participant, "#appointments")
    audit("appointment.move", participant.id, {"appointment_id": appointment.id})
    db().commit()
    flash("Appointment moved; reminders are planned again for the new time.", "success")
    return _back(participant, "#appointments")


@bp.post("/participants/<int:participant_id>/appointments/<int:appointment_id>/cancel")
def cancel_appointment(participant_id: int, appointment_id: int) -> WerkzeugResponse:
    participant = participant_or_404(participant_id)
    appointment = _appointment_or_404(participant, appointment_id)
    if conv.cancel_appointment(appointment, utcnow()):
        audit("appointment.cancel", participant.id, {"appointment_id": appointment.id})
        db().commit()
        flash("Appointment cancelled; its reminders will not be sent.", "success")
    return _back(participant, "#appointments")
