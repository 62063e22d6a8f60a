"""/simulator: the demo's phone. Pick a participant, text as them, and see what the bot answers
at once and what it sends on its schedule.

Only in the demo with the simulated transport (404 otherwise). A text goes through the real
inbound path: the simulator builds the form Twilio would post, signs it with the app's own auth
token over PUBLIC_BASE_URL + path exactly as Twilio does, and posts it to /twilio/inbound inside
the app. Nothing here bypasses the webhook's checks.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import or_, select
from twilio.request_validator import RequestValidator

from bot.models import InboundMessage, OutboundMessage, Participant, PlannedContact, User
from bot.transport.simulated import SimulatedTransport
from messages.keywords import classify_keyword

from .auth import roles_required
from .context import db, state, utcnow

bp = Blueprint("simulator", __name__)
INBOUND_PATH = "/twilio/inbound"
THREAD_LIMIT = 60


def simulator_enabled() -> bool:
    app_state = state()
    return app_state.config.demo and isinstance(app_state.transport, SimulatedTransport)


@bp.before_request
def _demo_only() -> None:
    if not simulator_enabled():
        abort(404)


def program_address(participant: Participant) -> str:
    config = state().config
    number = config.twilio_from_number or "+12025550100"
    if participant.channel == "whatsapp":
        return config.twilio_whatsapp_from or f"whatsapp:{number}"
    return number


def inbound_form(participant: Participant, body: str) -> dict[str, str]:
    """The fields Twilio posts for an incoming message (the ones the webhook reads)."""
    config = state().config
    return {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "SmsMessageSid": "",
        "AccountSid": config.twilio_account_sid or "AC" + "0" * 32,
        "From": participant.address,
        "To": program_address(participant),
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


def send_as_participant(participant: Participant, body: str) -> tuple[int, list[str]]:
    """Post a signed inbound message to the app's own webhook; the status and the replies."""
    config = state().config
    if not config.twilio_auth_token:
        raise RuntimeError("no auth token to sign with")
    form = inbound_form(participant, body)
    form["SmsMessageSid"] = form["MessageSid"]
    signature = RequestValidator(config.twilio_auth_token).compute_signature(
        config.public_base_url + INBOUND_PATH, form
    )
    response = current_app.test_client().post(
        INBOUND_PATH, data=form, headers={"X-Twilio-Signature": signature}
    )
    replies: list[str] = []
    if response.status_code == 200 and response.data.strip():
        root = ET.fromstring(response.data)  # noqa: S314 - our own webhook's TwiML
        replies = [(m.text or "").strip() for m in root.iter("Message")]
    return response.status_code, replies


# How an outbound row looks from the participant's phone. Nothing posts status callbacks in the
# demo, so a text the simulated transport accepted stays "queued" (as Twilio first answers).
_PHONE_STATUS = {
    "pending": "waiting to send",
    "sending": "waiting to send",
    "queued": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "not delivered",
    "failed": "not delivered",
    "unknown": "outcome unknown",
    "cancelled": "cancelled, not sent",
}


def _thread(participant: Participant) -> list[dict[str, Any]]:
    session = db()
    inbound = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.participant_id == participant.id)
        .order_by(InboundMessage.received_at.desc())
        .limit(THREAD_LIMIT)
    ).all()
    outbound = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.participant_id == participant.id)
        .order_by(OutboundMessage.created_at.desc())
        .limit(THREAD_LIMIT)
    ).all()
    items: list[dict[str, Any]] = [
        {"direction": "in", "body": m.body, "at": m.received_at, "status": None} for m in inbound
    ]
    items += [
        {
            "direction": "out",
            "body": m.body,
            "at": m.sent_at or m.send_after,
            "status": _PHONE_STATUS.get(m.status, m.status),
            "purpose": m.purpose,
        }
        for m in outbound
    ]
    items.sort(key=lambda item: item["at"])
    return items[-THREAD_LIMIT:]


def _upcoming(participant: Participant, now: datetime) -> list[PlannedContact]:
    return list(
        db().scalars(
            select(PlannedContact)
            .where(
                PlannedContact.participant_id == participant.id,
                PlannedContact.state.in_(("planned", "queued")),
                or_(PlannedContact.not_after >= now, PlannedContact.state == "queued"),
            )
            .order_by(PlannedContact.send_after)
            .limit(10)
        )
    )


@bp.get("/simulator")
@roles_required("coordinator", "admin")
def index() -> str:
    session = db()
    rows = session.execute(
        select(Participant, User.name)
        .outerjoin(User, User.id == Participant.coach_id)
        .order_by(Participant.external_id)
    ).all()
    chosen: Participant | None = None
    wanted = request.args.get("participant", type=int)
    for participant, _coach in rows:
        if participant.id == wanted:
            chosen = participant
    if chosen is None and rows:
        chosen = rows[0][0]
    now = utcnow()
    return render_template(
        "simulator.html",
        title="Phone simulator",
        rows=rows,
        chosen=chosen,
        thread=_thread(chosen) if chosen else [],
        upcoming=_upcoming(chosen, now) if chosen else [],
        now=now,
        signing=bool(state().config.twilio_auth_token),
    )


@bp.post("/simulator/send")
@roles_required("coordinator", "admin")
def send() -> ResponseReturnValue:
    session = db()
    participant = session.get(Participant, request.form.get("participant_id", type=int) or 0)
    if participant is None:
        abort(404)
    body = request.form.get("body", "").strip()
    target = url_for(".index", participant=participant.id)
    if not body:
        flash("Type a message first.", "error")
        return redirect(target)
    # End this request's transaction before the webhook opens its own: SQLite allows one writer.
    session.commit()
    try:
        status, replies = send_as_participant(participant, body)
    except RuntimeError:
        flash("The simulator has no auth token to sign with; set TWILIO_AUTH_TOKEN.", "error")
        return redirect(target)
    if status != 200:
        flash(f"The webhook answered {status}; see the server log.", "error")
    elif replies:
        flash("The bot answered at once: " + " / ".join(replies), "success")
    elif classify_keyword(body).carrier_handled:
        # The webhook answers <Response/> here on purpose: Twilio itself sends its standard
        # opt-out / opt-in confirmation for these words, and a second one would be noise.
        flash(
            "Received. Twilio answers this keyword itself with its standard confirmation, "
            "so the bot sends nothing.",
            "info",
        )
    else:
        flash(
            "Received. No automatic answer to this one; it is in the coach's conversation view.",
            "info",
        )
    return redirect(target)


@bp.post("/simulator/tick")
@roles_required("coordinator", "admin")
def run_tick() -> ResponseReturnValue:
    """One real scheduler pass (the worker's `tick`) now, with the app's simulated transport."""
    from bot.demo import simulated_tick

    # End this request's transaction first: the tick opens its own sessions (one SQLite writer).
    db().commit()
    app_state = state()
    summary = simulated_tick(app_state.sessions, app_state.transport, app_state.config, utcnow())
    s, sweep = summary.send, summary.sweep
    flash(
        f"Scheduler pass done: {s.sent} text(s) sent, {s.deferred} moved out of quiet hours, "
        f"{s.skipped + s.cancelled} skipped or cancelled; {summary.plan.created} new "
        f"contact(s) planned; {sweep.get('flags_opened', 0)} flag(s) opened, "
        f"{sweep.get('pages', 0)} page(s) to staff queued.",
        "info",
    )
    target = request.form.get("participant_id", type=int)
    return redirect(url_for(".index", participant=target) if target else url_for(".index"))
