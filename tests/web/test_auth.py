from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import time_machine
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import AuditLog, User
from bot.web.auth import CONTENT_SECURITY_POLICY, SIGN_IN_REFUSED, roles_required
from tests.factories import make_user
from tests.web.dashboard_helpers import csrf, login


def test_every_dashboard_page_redirects_to_login_when_signed_out(client: FlaskClient) -> None:
    for path in ("/", "/participants", "/participants/1", "/flags/1", "/users", "/audit"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next="), path


def test_healthz_and_login_need_no_login(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/login").status_code == 200


def test_login_with_the_right_password_opens_the_queue(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    user = make_user(session, now, email="ana@example.org")
    session.commit()
    response = login(client, "ANA@example.org ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    actions = session.scalars(select(AuditLog.action).where(AuditLog.user_id == user.id)).all()
    assert "login" in actions


def test_login_redirect_never_leaves_the_site(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    token = csrf(client)
    response = client.post(
        "/login?next=//evil.example/x",
        data={"email": "ana@example.org", "password": "correct horse battery", "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_wrong_password_is_refused_and_counted(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    user = make_user(session, now, email="ana@example.org")
    session.commit()
    response = login(client, "ana@example.org", "wrong password!")
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    session.refresh(user)
    assert user.failed_logins == 1
    assert client.get("/").status_code == 302


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    user = make_user(session, now, email="ana@example.org")
    session.commit()
    with time_machine.travel(now, tick=False):
        for _ in range(5):
            assert login(client, "ana@example.org", "wrong password!").status_code == 401
        # The right password does not help while the lock lasts.
        assert login(client, "ana@example.org").status_code == 401
        assert client.get("/").status_code == 302
    session.refresh(user)
    assert user.locked_until == now + timedelta(minutes=15)
    session.rollback()  # end the read transaction (SQLite: BEGIN IMMEDIATE holds the lock)
    with time_machine.travel(now + timedelta(minutes=15, seconds=1), tick=False):
        assert login(client, "ana@example.org").status_code == 302


def test_unknown_email_wrong_password_locked_and_deactivated_get_one_answer(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    make_user(session, now, email="lou@example.org", locked_until=now + timedelta(minutes=9))
    make_user(session, now, email="dee@example.org", active=False)
    session.commit()
    with time_machine.travel(now, tick=False):
        answers = {
            (response.status_code, _error_text(response.get_data(as_text=True)))
            for response in (
                login(client, "nobody@example.org", "wrong password!"),
                login(client, "ana@example.org", "wrong password!"),
                login(client, "lou@example.org"),
                login(client, "dee@example.org"),
            )
        }
    assert answers == {(401, SIGN_IN_REFUSED)}
    assert "more wrong" not in SIGN_IN_REFUSED


def _error_text(page: str) -> str:
    match = re.search(r'id="login-error">([^<]*)<', page)
    assert match, "no sign-in error on the page"
    return html.unescape(match.group(1))


def test_one_address_is_throttled_after_many_failures_across_accounts(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    with time_machine.travel(now, tick=False):
        for n in range(20):
            login(client, f"nobody{n}@example.org", "wrong password!")
        response = login(client, "ana@example.org")
        assert response.status_code == 429
        assert "Too many failed sign-ins" in response.get_data(as_text=True)
    with time_machine.travel(now + timedelta(minutes=16), tick=False):
        assert login(client, "ana@example.org").status_code == 302


def test_deactivated_user_cannot_log_in_and_is_signed_out(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    user = make_user(session, now, email="ana@example.org")
    session.commit()
    login(client, "ana@example.org")
    assert client.get("/").status_code == 200
    session.get(User, user.id).active = False  # type: ignore[union-attr]
    session.commit()
    assert client.get("/").status_code == 302
    assert login(client, "ana@example.org").status_code == 401


def test_forms_without_a_csrf_token_are_refused(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    response = client.post(
        "/login", data={"email": "ana@example.org", "password": "correct horse battery"}
    )
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_the_twilio_webhooks_are_exempt_from_csrf(client: FlaskClient) -> None:
    # No CSRF token and no signature: the webhook's own signature check answers (403), not
    # the CSRF check (400) and not the login guard (302).
    for path in ("/twilio/inbound", "/twilio/status"):
        response = client.post(path, data={"From": "+13125550100", "Body": "hi"})
        assert response.status_code == 403, path
        assert "expired" not in response.get_data(as_text=True)


def test_every_other_post_needs_a_csrf_token(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    login(client, "ana@example.org")
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still signed in


def test_logout_ends_the_session(client: FlaskClient, session: Session, now: datetime) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    login(client, "ana@example.org")
    token = csrf(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_a_cookie_saved_before_logout_is_refused_after_it(
    app: Flask, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    browser = app.test_client()
    login(browser, "ana@example.org")
    saved = browser.get_cookie("session")
    assert saved is not None
    token = csrf(browser, "/")
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", saved.value, domain=saved.domain)
    assert thief.get("/participants").status_code == 302


def test_signing_out_in_one_browser_leaves_the_other_signed_in(
    app: Flask, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    desk, phone = app.test_client(), app.test_client()
    login(desk, "ana@example.org")
    login(phone, "ana@example.org")
    desk.post("/logout", data={"csrf_token": csrf(desk, "/")})
    assert desk.get("/").status_code == 302
    assert phone.get("/").status_code == 200


def test_security_headers_are_on_every_page(client: FlaskClient) -> None:
    response = client.get("/login")
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_lax_and_secure_over_https(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ana@example.org")
    session.commit()
    response = login(client, "ana@example.org")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    # The test config's PUBLIC_BASE_URL is https.
    assert "Secure" in cookie


def test_roles_required_refuses_other_roles(
    config: object, session: Session, now: datetime
) -> None:
    from bot import create_app

    app: Flask = create_app(config)  # type: ignore[arg-type]
    extra = Blueprint("extra", __name__)

    @extra.get("/coordinators-only")
    @roles_required("coordinator", "admin")
    def only() -> str:
        return "secret"

    app.register_blueprint(extra)
    make_user(session, now, email="coach@example.org", role="coach")
    make_user(session, now, email="cora@example.org", role="coordinator")
    session.commit()
    coach = app.test_client()
    login(coach, "coach@example.org")
    assert coach.get("/coordinators-only").status_code == 403
    cora = app.test_client()
    login(cora, "cora@example.org")
    assert cora.get("/coordinators-only").get_data(as_text=True) == "secret"
