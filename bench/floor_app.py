"""The floor for bench/inbound_webhook.py: the least a signed inbound text can cost under
DESIGN.md (verify the signature, store the raw message and commit it, answer TwiML), with no
processing and no ORM: one psycopg connection per gunicorn worker and one INSERT. Nothing in the
real app can be cheaper than this, so it bounds what any optimisation of /twilio/inbound can
reach. Not used by the app."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Flask, Response, request
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

app = Flask(__name__)
_validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
_public = os.environ["PUBLIC_BASE_URL"]
_connection: Any = None

_INSERT = """
INSERT INTO inbound_messages (message_sid, from_address, to_address, channel, body, num_media,
    raw_form, participant_id, received_at, processing_state)
VALUES (%s, %s, %s, 'sms', %s, 0, %s,
    (SELECT id FROM participants WHERE phone = %s), %s, 'received')
ON CONFLICT (message_sid) DO NOTHING RETURNING id
"""


def _db() -> Any:
    global _connection
    if _connection is None:
        url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql")
        _connection = psycopg.connect(url.render_as_string(hide_password=False))
    return _connection


@app.post("/twilio/inbound")
def inbound() -> Response:
    form = request.form
    signature = request.headers.get("X-Twilio-Signature", "")
    if not _validator.validate(_public + request.path, form, signature):
        return Response("Forbidden\n", status=403)
    raw = json.dumps({key: form.getlist(key) for key in form})
    sender = form["From"]
    db = _db()
    with db.transaction():
        db.execute(
            _INSERT,
            (form["MessageSid"], sender, form.get("To", ""), form.get("Body", ""), raw, sender,
             datetime.now(UTC)),
        )  # fmt: skip
    return Response(
        '<?xml version="1.0" encoding="UTF-8"?><Response/>', status=200, mimetype="text/xml"
    )


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok", mimetype="text/plain")
