"""/users/<id>, /account and /reset/<token> (issue 18.3)."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import AuditLog, User
from bot.services.passwords import verify_password
from tests.factories import TEST_PASSWORD, make_user
from tests.web.dashboard_helpers import csrf, login

NEW = "plum kettle harbour 7"
_LINK = re.compile(r'id="reset-link" value="([^"]+)"')


def _admin(app: Flask, session: Session, now: datetime) -> tuple[FlaskClient, User]:
    admin = make_user(session, now, email="root@example.org", role="admin", name="Ada Admin")
    session.commit()
    client = app.test_client()
    assert login(client, admin.email).status_code == 302
    return client, admin


def _form(user: User, **changes: str) -> dict[str, str]:
    values = {
        "name": user.name,
        "role": user.role,
        "phone": user.phone or "",
        "covering_user_id": str(user.covering_user_id or ""),
        "active": "yes" if user.active else "",
    }
    if user.away:
        values["away"] = "yes"
    values.update(changes)
    return {k: v for k, v in values.items() if v != ""}


def test_an_admin_edits_name_role_phone_cover_and_active_state(
    app: Flask, session: Session, now: datetime
) -> None:
    client, admin = _admin(app, session, now)
    cover = make_user(session, now, name="Cora Cover")
    user = make_user(session, now, email="ben@example.org", name="Ben")
    session.commit()
    token = csrf(client, f"/users/{user.id}")
    response = client.post(
        f"/users/{user.id}",
        data={
            "csrf_token": token,
            **_form(
                user,
                name="Ben Okafor",
                role="coordinator",
                phone="(202) 555-0199",
                covering_user_id=str(cover.id),
                away="yes",
            ),
        },
    )
    assert response.status_code == 302
    assert "Saved ben@example.org" in client.get(f"/users/{user.id}").get_data(as_text=True)
    session.expire_all()
    saved = session.get(User, user.id)
    assert saved is not None
    assert (saved.name, saved.role, saved.phone, saved.covering_user_id, saved.away) == (
        "Ben Okafor",
        "coordinator",
        "+12025550199",
        cover.id,
        True,
    )
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "user.update")).one()
    assert audit.user_id == admin.id
    assert audit.detail is not None and audit.detail["role"] == "coordinator"


def test_wrong_fields_are_named_beside_them_and_nothing_is_saved(
    app: Flask, session: Session, now: datetime
) -> None:
    client, _ = _admin(app, session, now)
    user = make_user(session, now, name="Ben")
    session.commit()
    token = csrf(client, f"/users/{user.id}")
    response = client.post(
        f"/users/{user.id}",
        data={"csrf_token": token, **_form(user, name="Ben Two", phone="555-01", role="boss")},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="phone-error"' in page and "is not a valid mobile number" in page
    assert 'id="role-error"' in page
    session.expire_all()
    assert session.get(User, user.id).name == "Ben"  # type: ignore[union-attr]


def test_an_admin_cannot_demote_or_deactivate_themselves(
    app: Flask, session: Session, now: datetime
) -> None:
    client, admin = _admin(app, session, now)
    token = csrf(client, f"/users/{admin.id}")
    response = client.post(
        f"/users/{admin.id}", data={"csrf_token": token, **_form(admin, role="coach", active="")}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "cannot change your own role" in page and "cannot deactivate yourself" in page


def test_deactivating_a_user_signs_them_out(app: Flask, session: Session, now: datetime) -> None:
    client, _ = _admin(app, session, now)
    user = make_user(session, now, email="ben@example.org")
    session.commit()
    ben = app.test_client()
    login(ben, "ben@example.org")
    token = csrf(client, f"/users/{user.id}")
    client.post(f"/users/{user.id}", data={"csrf_token": token, **_form(user, active="")})
    assert ben.get("/").status_code == 302


def test_coaches_and_coordinators_cannot_open_a_user(
    app: Flask, session: Session, now: datetime
) -> None:
    user = make_user(session, now, email="cora@example.org", role="coordinator")
    session.commit()
    client = app.test_client()
    login(client, "cora@example.org")
    assert client.get(f"/users/{user.id}").status_code == 403
    assert client.post(f"/users/{user.id}/reset-link").status_code in (400, 403)


def test_a_reset_link_is_shown_once_and_sets_a_new_password(
    app: Flask, session: Session, now: datetime
) -> None:
    client, _ = _admin(app, session, now)
    user = make_user(session, now, email="ben@example.org")
    session.commit()
    ben_elsewhere = app.test_client()
    login(ben_elsewhere, "ben@example.org")
    token = csrf(client, f"/users/{user.id}")
    page = client.post(f"/users/{user.id}/reset-link", data={"csrf_token": token})
    assert page.status_code == 200
    match = _LINK.search(page.get_data(as_text=True))
    assert match
    link = match.group(1)
    assert link.startswith("https://checkin.example.org/reset/")
    # Not shown again.
    assert not _LINK.search(client.get(f"/users/{user.id}").get_data(as_text=True))

    path = link.removeprefix("https://checkin.example.org")
    stranger = app.test_client()
    form = stranger.get(path)
    assert form.status_code == 200 and "ben@example.org" in form.get_data(as_text=True)
    weak = stranger.post(
        path,
        data={
            "csrf_token": csrf(stranger, path),
            "new_password": "password",
            "new_password2": "password",
        },
    )
    assert weak.status_code == 400 and "at least 12 characters" in weak.get_data(as_text=True)
    done = stranger.post(
        path, data={"csrf_token": csrf(stranger, path), "new_password": NEW, "new_password2": NEW}
    )
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    assert stranger.get(path).status_code == 404  # used
    assert ben_elsewhere.get("/").status_code == 302  # every sign-in ended
    assert login(stranger, "ben@example.org", NEW).status_code == 302
    session.expire_all()
    assert verify_password(session.get(User, user.id).password_hash, NEW)  # type: ignore[union-attr]


def test_an_unknown_reset_link_says_so_without_a_sign_in(client: FlaskClient) -> None:
    response = client.get("/reset/not-a-real-token")
    assert response.status_code == 404
    assert "does not work" in response.get_data(as_text=True)


def test_everyone_changes_their_own_password_at_account(
    app: Flask, session: Session, now: datetime
) -> None:
    make_user(session, now, email="ben@example.org", role="coach")
    session.commit()
    here, there = app.test_client(), app.test_client()
    login(here, "ben@example.org")
    login(there, "ben@example.org")
    token = csrf(here, "/account")
    wrong = here.post(
        "/account",
        data={
            "csrf_token": token,
            "current_password": "not my password",
            "new_password": NEW,
            "new_password2": NEW,
        },
    )
    assert wrong.status_code == 400
    assert 'id="current_password-error"' in wrong.get_data(as_text=True)
    common = here.post(
        "/account",
        data={
            "csrf_token": token,
            "current_password": TEST_PASSWORD,
            "new_password": "qwerty123456",
            "new_password2": "qwerty123456",
        },
    )
    assert "most common" in common.get_data(as_text=True)
    done = here.post(
        "/account",
        data={
            "csrf_token": token,
            "current_password": TEST_PASSWORD,
            "new_password": NEW,
            "new_password2": NEW,
        },
    )
    assert done.status_code == 302
    assert here.get("/").status_code == 200  # this browser stays signed in
    assert there.get("/").status_code == 302  # the other one is signed out
    actions = session.scalars(select(AuditLog.action)).all()
    assert "password.change" in actions
