"""Helpers for dashboard tests: read the CSRF token from a page and sign in like a browser."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import TEST_PASSWORD

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(response: TestResponse) -> str:
    match = _TOKEN.search(response.get_data(as_text=True))
    assert match, "page has no CSRF token"
    return match.group(1)


def csrf(client: FlaskClient, path: str = "/login") -> str:
    return csrf_from(client.get(path))


def login(client: FlaskClient, email: str, password: str = TEST_PASSWORD) -> TestResponse:
    token = csrf(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def post(client: FlaskClient, path: str, data: dict[str, str] | None = None) -> TestResponse:
    """POST a form with a valid CSRF token taken from the logged-in user's queue page."""
    token = csrf(client, "/participants")
    return client.post(path, data={**(data or {}), "csrf_token": token})
