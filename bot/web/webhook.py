"""Twilio's webhooks: POST /twilio/inbound (a text arrives) and POST /twilio/status (a delivery
status changes).

Both require a valid X-Twilio-Signature, checked with the SDK's RequestValidator over
PUBLIC_BASE_URL + path + query string and every value of every form field. Behind a proxy the
app may see http://127.0.0.1:8000/..., but Twilio signed the public https URL, which is why the
URL is rebuilt from PUBLIC_BASE_URL instead of taken from the request. A request that fails the
check gets 403, is not stored, and leaves one log line (masked number, no body).

When the database does not answer in time (the web app's sessions give up after a few seconds:
bot.db.WEB_TIMEOUTS), a signed text is kept in the spool on local disk before the answer, which
still carries the crisis or HELP reply (bot.services.spool); the spool is replayed by the next
request and by every worker pass.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from xml.sax.saxutils import escape

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from bot.db import session_scope
from bot.log import log_event, mask_phone
from bot.services import spool
from bot.services.delivery import apply_status
from bot.services.inbound import InboundForm, receive
from bot.services.inbound_form import MAX_SID, BadForm, field, parse_form

from .context import state, utcnow

log = logging.getLogger(__name__)

bp = Blueprint("webhook", __name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
# How long a webhook request spends replaying the spool before its own text (Twilio waits 15 s;
# a stuck database makes each replay attempt give up after the web session's timeouts).
REPLAY_SECONDS = 3.0


# The webhook's name for a form that cannot be stored (answered 400).
BadRequest = BadForm


def twiml(message: str | None = None) -> Response:
    """`<Response/>`, or `<Response><Message>…</Message></Response>`."""
    if message is None:
        xml = f"{_XML_DECLARATION}<Response/>"
    else:
        xml = f"{_XML_DECLARATION}<Response><Message>{escape(message)}</Message></Response>"
    return Response(xml, status=200, mimetype="text/xml")


def signed_url() -> str:
    """The URL Twilio signed: the public base URL, this path, and the raw query string."""
    url = state().config.public_base_url + request.path
    query = request.query_string.decode("latin-1")
    return f"{url}?{query}" if query else url


def _forbidden(reason: str) -> Response:
    log_event(
        log,
        "webhook.forbidden",
        level=logging.WARNING,
        path=request.path,
        reason=reason,
        sender=mask_phone(request.form.get("From")),
        remote=request.remote_addr,
    )
    return Response("Forbidden\n", status=403, mimetype="text/plain")


def check_signature() -> Response | None:
    """None when the request is Twilio's; otherwise the 403 to answer with."""
    token = state().config.twilio_auth_token
    if not token:
        # Without the Auth Token nothing can be verified, so nothing is accepted.
        return _forbidden("no TWILIO_AUTH_TOKEN configured")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return _forbidden("missing signature")
    if not RequestValidator(token).validate(signed_url(), request.form, signature):
        return _forbidden("bad signature")
    return None


def parse_inbound(form: MultiDict[str, str]) -> InboundForm:
    return parse_form(form.to_dict(flat=False))


@bp.post("/twilio/inbound")
def inbound() -> Response:
    denied = check_signature()
    if denied is not None:
        return denied
    try:
        parsed = parse_inbound(request.form)
    except BadRequest as exc:
        log_event(
            log, "webhook.bad_request", level=logging.WARNING, path=request.path, why=str(exc)
        )
        return Response(f"Bad request: {exc}\n", status=400, mimetype="text/plain")
    app_state = state()
    config = app_state.config
    now = utcnow()
    if spool.has_texts(config.spool_dir):
        # Texts kept during an outage go first, for a few seconds: a person's texts are
        # processed in the order they came (bot.services.spool, "Order").
        spool.replay(
            app_state.sessions,
            config.spool_dir,
            now=now,
            config=config,
            deadline=time.monotonic() + REPLAY_SECONDS,
        )
    if not spool.has_texts(config.spool_dir):
        try:
            outcome = receive(app_state.sessions, parsed, now=now, config=config)
        except SQLAlchemyError as exc:
            # The database does not answer (or not in time): the text goes to the spool.
            log_event(
                log,
                "inbound.store_failed",
                level=logging.ERROR,
                sid=parsed.message_sid,
                sender=mask_phone(parsed.from_address),
                error=type(exc).__name__,
            )
        else:
            return twiml(outcome.reply)
    return _spool(parsed, now)


def _spool(parsed: InboundForm, now: datetime) -> Response:
    """Keep the signed text on disk and answer what can be answered without the database."""
    config = state().config
    reply = spool.offline_reply(parsed.body, config)
    text = spool.SpooledText(
        form=spool.form_of(request.form.to_dict(flat=False)),
        received_at=now,
        signature=request.headers.get(SIGNATURE_HEADER, ""),
        url=signed_url(),
        reply=reply.body if reply is not None else None,
        reply_purpose=reply.purpose if reply is not None else None,
    )
    try:
        spool.spool_text(config.spool_dir, text)
    except OSError as exc:
        # Neither the database nor the disk: say so, so that Twilio tries its fallback URL.
        log_event(
            log,
            "inbound.spool_failed",
            level=logging.CRITICAL,
            sid=parsed.message_sid,
            sender=mask_phone(parsed.from_address),
            error=type(exc).__name__,
        )
        return Response("Service unavailable\n", status=503, mimetype="text/plain")
    log_event(
        log,
        "inbound.spooled",
        level=logging.WARNING,
        sid=parsed.message_sid,
        sender=mask_phone(parsed.from_address),
        replied=reply is not None,
    )
    return twiml(reply.body if reply is not None else None)


@bp.post("/twilio/status")
def status() -> Response:
    denied = check_signature()
    if denied is not None:
        return denied
    form = request.form
    fields = form.to_dict(flat=False)
    sid = field(fields, "MessageSid", "SmsSid")
    twilio_status = field(fields, "MessageStatus", "SmsStatus")
    if not sid or not twilio_status or len(sid) > MAX_SID:
        log_event(log, "webhook.bad_request", level=logging.WARNING, path=request.path)
        return Response("Bad request: MessageSid and MessageStatus are required\n", status=400)
    try:
        with session_scope(state().sessions) as session:
            apply_status(
                session,
                provider_sid=sid,
                twilio_status=twilio_status,
                error_code=form.get("ErrorCode"),
                error_message=form.get("ErrorMessage"),
                now=utcnow(),
            )
    except SQLAlchemyError as exc:
        log_event(log, "status.failed", level=logging.ERROR, sid=sid, error=type(exc).__name__)
        return Response("Service unavailable\n", status=503, mimetype="text/plain")
    return twiml()
