"""The baseline for bench/inbound_webhook.py: a Flask endpoint that answers empty TwiML and does
nothing else (no signature check, no database), served by the same gunicorn settings."""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)


@app.post("/twilio/inbound")
def inbound() -> Response:
    return Response(
        '<?xml version="1.0" encoding="UTF-8"?><Response/>', status=200, mimetype="text/xml"
    )


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok", mimetype="text/plain")
