"""End to end in Chromium: an admin makes a reset link, the user sets a new password through
it and signs in with it; a session cookie saved before sign-out opens nothing afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.db import session_scope
from tests.browser.conftest import LiveServer
from tests.factories import TEST_PASSWORD, make_user

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
NEW_PASSWORD = "plum kettle harbour 7"


def _seed(server: LiveServer) -> int:
    now = datetime.now(UTC)
    with session_scope(server.sessions) as session:
        make_user(session, now, email="ada@example.org", name="Ada Admin", role="admin")
        ben = make_user(session, now, email="ben@example.org", name="Ben Okafor")
        return ben.id


def _sign_in(page: Any, server: LiveServer, email: str, password: str = TEST_PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_admin_issues_a_reset_link_and_the_user_signs_in_with_the_new_password(
    browser: Any, live_server: LiveServer
) -> None:
    ben_id = _seed(live_server)
    admin = browser.new_context(viewport=DESKTOP)
    page = admin.new_page()
    _sign_in(page, live_server, "ada@example.org")
    page.wait_for_url(live_server.url + "/")
    page.get_by_role("link", name="Users").click()
    page.get_by_role("link", name="Ben Okafor").click()
    assert page.url == f"{live_server.url}/users/{ben_id}"
    page.get_by_role("button", name="Make a reset link").click()
    link = page.get_by_role("textbox", name="Reset link").input_value()
    assert link.startswith(live_server.url + "/reset/")
    admin.close()

    ben = browser.new_context(viewport=DESKTOP)
    page = ben.new_page()
    page.goto(link)
    page.get_by_label("New password", exact=True).fill("password1234")
    page.get_by_label("New password again").fill("password1234")
    page.get_by_role("button", name="Set password").click()
    assert "most common" in page.locator("#new_password-error").inner_text()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(live_server.url + "/login")
    assert "Your new password is set" in page.content()

    _sign_in(page, live_server, "ben@example.org", TEST_PASSWORD)
    page.locator("#login-error").wait_for()
    _sign_in(page, live_server, "ben@example.org", NEW_PASSWORD)
    page.wait_for_url(live_server.url + "/")
    # The link was used up.
    assert page.goto(link).status == 404
    ben.close()


def test_a_cookie_saved_before_sign_out_is_refused_after_it(
    browser: Any, live_server: LiveServer
) -> None:
    _seed(live_server)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _sign_in(page, live_server, "ben@example.org")
    page.wait_for_url(live_server.url + "/")
    saved = context.cookies()
    assert any(c["name"] == "session" for c in saved)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(live_server.url + "/login")
    context.close()

    thief = browser.new_context(viewport=DESKTOP)
    thief.add_cookies(saved)
    page = thief.new_page()
    page.goto(live_server.url + "/participants")
    assert page.url.startswith(live_server.url + "/login")
    thief.close()
