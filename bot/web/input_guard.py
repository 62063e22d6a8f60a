"""Odd input is a 4xx, never a 500 (DESIGN.md §2 "Dashboard routes"; issue 17.8).

- An id in a URL beyond what the integer columns hold (`/participants/99999999999999999999`)
  is 404, like any id that does not exist: the app's `int` converter has an upper bound.
- A query parameter with a control character, or a form field with one other than tab and line
  breaks (NUL cannot even be stored in PostgreSQL text), is 400. The webhooks are exempt: a
  text's body is stored as sent (bot.web.webhook replaces NUL).
- A number in a parameter that the database cannot hold (a page or user filter of 20 digits)
  is 400 instead of the driver's overflow error.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, abort, request
from sqlalchemy.exc import DataError
from werkzeug.routing import IntegerConverter, Map

from bot.log import log_event

log = logging.getLogger(__name__)

# Every primary key is a 32-bit INTEGER on PostgreSQL.
MAX_ID = 2**31 - 1
_CONTROL_IN_PARAMETER = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_FIELD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, LF and CR are text
EXEMPT_PREFIXES = ("/twilio/",)


class BoundedIntConverter(IntegerConverter):
    """`<int:id>` that does not match a number above MAX_ID (so the route answers 404)."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, MAX_ID if max is None else max, signed)


def _refuse_control_characters() -> None:
    if request.path.startswith(EXEMPT_PREFIXES):
        return
    for name, value in request.args.items(multi=True):
        if _CONTROL_IN_PARAMETER.search(name) or _CONTROL_IN_PARAMETER.search(value):
            abort(400, description="A parameter holds a control character.")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        for name, value in request.form.items(multi=True):
            if _CONTROL_IN_PARAMETER.search(name) or _CONTROL_IN_FIELD.search(value):
                abort(400, description=f"The field {name!r} holds a control character.")


def _out_of_range(exc: Exception) -> tuple[str, int]:
    log_event(log, "web.out_of_range", logging.WARNING, path=request.path, error=type(exc).__name__)
    return "Bad request: a value is out of range.\n", 400


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered: rules bind their converters when added."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.before_request(_refuse_control_characters)
    app.register_error_handler(OverflowError, _out_of_range)
    app.register_error_handler(DataError, _out_of_range)
