"""Twilio's webhooks: POST /twilio/inbound (a text arrives) and POST /twilio/status (a delivery
status changes).

Both require a valid X-Twilio-Signature, checked with the SDK's RequestValidator over
PUBLIC_BASE_URL + path + query string and every value of every form field. Behind a proxy the
app may see http://127.0.0.1:8000/..., but Twilio signed the public https URL, which is why the
URL is rebuilt from PUBLIC_BASE_URL instead of taken from the request. A request that fails the
check gets 403, is not stored, and leaves one log line (masked number, no body).
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from bot.db import session_scope
from bot.log import log_event, mask_phone
from bot.services.delivery import apply_status
from bot.services.inbound import InboundForm, receive

from .context import state, utcnow

log = logging.getLogger(__name__)

bp = Blueprint("webhook", __name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
# Column sizes of inbound_messages: longer values are not Twilio's and are refused with 400.
_MAX_SID = 64
_MAX_ADDRESS = 40


class BadRequest(ValueError):
    """A signed request whose form cannot be stored (missing or impossible fields)."""


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


def _clean(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; everything else is kept as posted.
    return value.replace("\x00", "\ufffd")


def _field(form: MultiDict[str, str], *names: str) -> str:
    for name in names:
        value = form.get(name)
        if value is not None and value.strip():
            return _clean(value.strip())
    return ""


def _num_media(form: MultiDict[str, str]) -> int:
    raw = form.get("NumMedia", "").strip()
    # ASCII only: "²" and other Unicode digits pass isdigit() but not int().
    if raw.isascii() and raw.isdigit():
        return min(int(raw), 1000)
    if raw:
        # Not Twilio's; the text is still stored and processed, counting its media URLs.
        log_event(log, "webhook.num_media_unparsable", logging.WARNING, length=len(raw))
    return sum(1 for key in form if key.startswith("MediaUrl"))


def parse_inbound(form: MultiDict[str, str]) -> InboundForm:
    sid = _field(form, "MessageSid", "SmsMessageSid", "SmsSid")
    sender = _field(form, "From")
    to = _field(form, "To")
    if not sid:
        raise BadRequest("MessageSid is missing")
    if len(sid) > _MAX_SID:
        raise BadRequest("MessageSid is too long")
    if not sender:
        raise BadRequest("From is missing")
    if len(sender) > _MAX_ADDRESS or len(to) > _MAX_ADDRESS:
        raise BadRequest("From or To is too long")
    return InboundForm(
        message_sid=sid,
        from_address=sender,
        to_address=to,
        body=_clean(form.get("Body", "")),
        num_media=_num_media(form),
        raw_form={key: [_clean(v) for v in form.getlist(key)] for key in form},
    )


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
    try:
        outcome = receive(app_state.sessions, parsed, now=utcnow(), config=app_state.config)
    except SQLAlchemyError as exc:
        # Could not even store it: say so, so that Twilio tries its fallback URL.
        log_event(
            log,
            "inbound.store_failed",
            level=logging.ERROR,
            sid=parsed.message_sid,
            sender=mask_phone(parsed.from_address),
            error=type(exc).__name__,
        )
        return Response("Service unavailable\n", status=503, mimetype="text/plain")
    return twiml(outcome.reply)


@bp.post("/twilio/status")
def status() -> Response:
    denied = check_signature()
    if denied is not None:
        return denied
    form = request.form
    sid = _field(form, "MessageSid", "SmsSid")
    twilio_status = _field(form, "MessageStatus", "SmsStatus")
    if not sid or not twilio_status or len(sid) > _MAX_SID:
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
