"""The dashboard pages: queue, participants, conversation, flags, users, audit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.models import (
    Appointment,
    AuditLog,
    Flag,
    InboundMessage,
    OutboundMessage,
    Participant,
    User,
)
from bot.services.flags import raise_flag
from tests.factories import make_appointment, make_participant, make_user
from tests.web.dashboard_helpers import csrf, login

T = TypeVar("T")


@dataclass
class World:
    coach_a: User
    coach_b: User
    coordinator: User
    admin: User
    sam: Participant  # coach A's
    flag: Flag  # urgent crisis flag on Sam


def _inbound(session: Session, p: Participant, body: str, at: datetime, sid: str) -> None:
    session.add(
        InboundMessage(
            message_sid=sid,
            from_address=p.address,
            to_address="+15550100000",
            channel="sms",
            body=body,
            raw_form={},
            participant_id=p.id,
            received_at=at,
            processing_state="processed",
        )
    )


@pytest.fixture
def world(session: Session, now: datetime) -> World:
    coach_a = make_user(session, now, email="a@example.org", name="Alex Coach")
    coach_b = make_user(session, now, email="b@example.org", name="Bea Coach")
    cora = make_user(session, now, email="cora@example.org", role="coordinator")
    admin = make_user(session, now, email="admin@example.org", role="admin")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach_a.id)
    _inbound(session, sam, "I can't do this anymore", now - timedelta(minutes=5), "SM1")
    flag = raise_flag(
        session,
        reason="crisis",
        severity="urgent",
        now=now - timedelta(minutes=5),
        participant_id=sam.id,
    ).flag
    session.commit()
    return World(coach_a, coach_b, cora, admin, sam, flag)


def _as(client: FlaskClient, user: User) -> FlaskClient:
    assert login(client, user.email).status_code == 302
    return client


def _get(sessions: sessionmaker[Session], model: type[T], ident: int) -> T:
    """Read a row in a short session of its own (on SQLite an open read transaction would
    hold the write lock the app needs)."""
    with sessions() as s:
        row = s.get(model, ident)
        assert row is not None
        return row


def _audit_actions(session: Session, participant_id: int | None = None) -> list[str]:
    query = select(AuditLog.action).order_by(AuditLog.id)
    if participant_id is not None:
        query = query.where(AuditLog.participant_id == participant_id)
    actions = list(session.scalars(query))
    session.rollback()
    return actions


# --- queue ---------------------------------------------------------------------------------


def test_queue_lists_urgent_first_then_high_then_oldest(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    old = make_participant(session, now, first_name="Old", coach_id=world.coach_a.id)
    high = make_participant(session, now, first_name="High", coach_id=world.coach_a.id)
    raise_flag(
        session,
        reason="no_reply",
        severity="normal",
        now=now - timedelta(days=3),
        participant_id=old.id,
    )
    raise_flag(session, reason="delivery_failed", severity="high", now=now, participant_id=high.id)
    session.commit()
    with time_machine.travel(now, tick=False):
        _as(client, world.coach_a)
        data = client.get("/api/queue").get_json()
        page = client.get("/").get_data(as_text=True)
    assert [i["label"].split()[0] for i in data["items"]] == ["Sam", "High", "Old"]
    assert data["items"][0]["preview"] == "I can't do this anymore"
    assert data["items"][0]["age"] == "5 min ago"
    assert {c["reason"]: c["count"] for c in data["counts"]} == {
        "crisis": 1,
        "delivery_failed": 1,
        "no_reply": 1,
    }
    assert page.index("Sam") < page.index("High") < page.index("Old")
    assert "Crisis words in a message" in page
    assert "js/queue.js" in page


def test_queue_shows_only_the_coachs_caseload(client: FlaskClient, world: World) -> None:
    _as(client, world.coach_b)
    data = client.get("/api/queue").get_json()
    assert data["items"] == [] and data["total"] == 0
    assert "Nothing needs you right now" in client.get("/").get_data(as_text=True)


def test_covering_coach_sees_the_covered_caseload(
    client: FlaskClient, session: Session, world: World
) -> None:
    session.get(User, world.coach_a.id).covering_user_id = world.coach_b.id  # type: ignore[union-attr]
    session.commit()
    _as(client, world.coach_b)
    assert [i["flag_id"] for i in client.get("/api/queue").get_json()["items"]] == [world.flag.id]
    assert client.get(f"/participants/{world.sam.id}").status_code == 200


def test_queue_json_requires_login(client: FlaskClient) -> None:
    response = client.get("/api/queue")
    assert response.status_code == 401
    assert response.get_json() == {"error": "login required"}


def test_coordinators_see_unknown_sender_flags(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    raise_flag(
        session, reason="unknown_sender", severity="normal", now=now, sender_address="+13125550999"
    )
    session.commit()
    _as(client, world.coordinator)
    labels = [i["label"] for i in client.get("/api/queue").get_json()["items"]]
    assert labels[1] == "Unknown number +1******0999"


# --- participants list --------------------------------------------------------------------


def test_participant_search_finds_by_name_id_and_phone_within_caseload(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    make_participant(session, now, first_name="Samantha", coach_id=world.coach_b.id)
    session.commit()
    _as(client, world.coach_a)
    page = client.get("/participants?q=sam").get_data(as_text=True)
    assert world.sam.external_id in page
    assert "Samantha" not in page
    assert world.sam.external_id in client.get(f"/participants?q={world.sam.phone[-4:]}").get_data(
        as_text=True
    )
    assert "Nobody matches" in client.get("/participants?q=zzz").get_data(as_text=True)
    assert "participants.search" in _audit_actions(session)


def test_caseload_export_has_only_the_caseload(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    make_participant(session, now, external_id="OTHER-1", coach_id=world.coach_b.id)
    session.commit()
    _as(client, world.coach_a)
    text = client.get("/participants.csv").get_data(as_text=True)
    assert world.sam.external_id in text
    assert "OTHER-1" not in text


# --- conversation -------------------------------------------------------------------------


def test_conversation_shows_thread_in_local_time_with_delivery_status(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    session.add(
        OutboundMessage(
            idempotency_key="k1",
            participant_id=world.sam.id,
            purpose="checkin",
            channel="sms",
            to_address=world.sam.phone,
            body="Hi Sam, how are you doing today?",
            segments=1,
            status="undelivered",
            error_code=30003,
            send_after=now - timedelta(hours=1),
            created_at=now - timedelta(hours=1),
            sent_at=now - timedelta(hours=1),
            attempts=1,
        )
    )
    session.commit()
    _as(client, world.coach_a)
    page = client.get(f"/participants/{world.sam.id}").get_data(as_text=True)
    # 15:00 UTC is 10:00 EST; the check-in went an hour before the 14:55 reply.
    assert "Hi Sam, how are you doing today?" in page
    assert "9:00 AM EST" in page
    assert "9:55 AM EST" in page
    assert "Not delivered: phone unreachable: off or out of service (30003)" in page
    assert page.index("how are you") < page.index("I can&#39;t do this anymore")
    assert "participant.view" in _audit_actions(session, world.sam.id)


def test_reply_goes_to_the_outbox_as_a_coach_reply(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    with time_machine.travel(now, tick=False):
        _as(client, world.coach_a)
        page = client.get(f"/participants/{world.sam.id}")
        key = re.search(r'name="reply_key" value="([^"]+)"', page.get_data(as_text=True))
        assert key
        form = {
            "body": "I'm here. Can I call you now?",
            "reply_key": key.group(1),
            "csrf_token": csrf(client, "/"),
        }
        response = client.post(f"/participants/{world.sam.id}/reply", data=form)
        assert response.status_code == 302
        client.post(f"/participants/{world.sam.id}/reply", data=form)  # double submit
    rows = session.scalars(select(OutboundMessage)).all()
    assert len(rows) == 1
    message = rows[0]
    assert message.purpose == "coach_reply"
    assert message.created_by_id == world.coach_a.id
    assert message.to_address == world.sam.phone
    assert message.status == "pending"
    assert message.send_after == now
    assert "participant.reply" in _audit_actions(session, world.sam.id)


def test_reply_in_quiet_hours_to_someone_who_has_not_texted_waits_for_morning_by_default(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    dee = make_participant(session, now, first_name="Dee", coach_id=world.coach_a.id)
    session.commit()
    night = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 22:00 in New York
    with time_machine.travel(night, tick=False):
        _as(client, world.coach_a)
        page = client.get(f"/participants/{dee.id}").get_data(as_text=True)
        assert "It is quiet hours for Dee" in page
        assert 'name="when" value="morning" checked' in page
        response = client.post(
            f"/participants/{dee.id}/reply",
            data={"body": "Talk tomorrow", "csrf_token": csrf(client, "/")},
            follow_redirects=True,
        )
    assert "when their quiet hours end" in response.get_data(as_text=True)
    message = session.scalars(select(OutboundMessage)).one()
    assert message.send_after == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)  # 08:00 EST
    session.rollback()


def test_reply_naming_a_sensitive_detail_is_refused(
    client: FlaskClient, session: Session, world: World
) -> None:
    _as(client, world.coach_a)
    response = client.post(
        f"/participants/{world.sam.id}/reply",
        data={"body": "Don't miss your probation meeting", "csrf_token": csrf(client, "/")},
        follow_redirects=True,
    )
    assert "Please rephrase without: probation" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0
    session.rollback()


def test_no_reply_to_someone_who_opted_out(
    client: FlaskClient, session: Session, world: World
) -> None:
    session.get(Participant, world.sam.id).status = "opted_out"  # type: ignore[union-attr]
    session.commit()
    _as(client, world.coach_a)
    page = client.get(f"/participants/{world.sam.id}").get_data(as_text=True)
    assert "has opted out" in page
    response = client.post(
        f"/participants/{world.sam.id}/reply",
        data={"body": "hello", "csrf_token": csrf(client, "/")},
        follow_redirects=True,
    )
    assert "opted out of texts" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0
    session.rollback()


def test_acknowledge_then_resolve_with_outcome_and_note(
    client: FlaskClient, sessions: sessionmaker[Session], world: World
) -> None:
    _as(client, world.coach_a)
    token = csrf(client, "/")
    client.post(f"/flags/{world.flag.id}/acknowledge", data={"csrf_token": token})
    flag = _get(sessions, Flag, world.flag.id)
    assert flag.state == "acknowledged"
    assert flag.acknowledged_by_id == world.coach_a.id
    refused = client.post(
        f"/flags/{world.flag.id}/resolve", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Choose what happened" in refused.get_data(as_text=True)
    client.post(
        f"/flags/{world.flag.id}/resolve",
        data={"csrf_token": token, "outcome": "reached", "note": "Called, safe with family"},
    )
    flag = _get(sessions, Flag, world.flag.id)
    assert flag.state == "resolved"
    assert (flag.outcome, flag.note) == ("reached", "Called, safe with family")
    with sessions() as s:
        assert {"flag.acknowledge", "flag.resolve"} <= set(_audit_actions(s, world.sam.id))
    assert client.get("/api/queue").get_json()["items"] == []


def test_flag_page_shows_history(client: FlaskClient, world: World, session: Session) -> None:
    _as(client, world.coach_a)
    page = client.get(f"/flags/{world.flag.id}").get_data(as_text=True)
    assert "Crisis words in a message" in page
    assert "opened" in page
    assert "flag.view" in _audit_actions(session, world.sam.id)


def test_pause_and_resume_bump_the_plan_version(
    client: FlaskClient, sessions: sessionmaker[Session], world: World
) -> None:
    _as(client, world.coach_a)
    token = csrf(client, "/")
    client.post(f"/participants/{world.sam.id}/pause", data={"csrf_token": token})
    sam = _get(sessions, Participant, world.sam.id)
    assert (sam.status, sam.plan_version) == ("paused", 2)
    assert "Check-ins are <strong>paused</strong>" in client.get(
        f"/participants/{world.sam.id}"
    ).get_data(as_text=True)
    client.post(f"/participants/{world.sam.id}/resume", data={"csrf_token": token})
    sam = _get(sessions, Participant, world.sam.id)
    assert (sam.status, sam.plan_version) == ("active", 3)
    with sessions() as s:
        actions = _audit_actions(s, world.sam.id)
    assert actions.index("participant.pause") < actions.index("participant.resume")


def test_edit_phone_zone_and_language(
    client: FlaskClient, sessions: sessionmaker[Session], world: World
) -> None:
    _as(client, world.coach_a)
    token = csrf(client, "/")
    bad = client.post(
        f"/participants/{world.sam.id}/details",
        data={
            "csrf_token": token,
            "phone": "555-01",
            "timezone": "America/Chicago",
            "language": "es",
        },
        follow_redirects=True,
    )
    assert "is not a valid mobile number" in bad.get_data(as_text=True)
    assert _get(sessions, Participant, world.sam.id).timezone == "America/New_York"
    client.post(
        f"/participants/{world.sam.id}/details",
        data={
            "csrf_token": token,
            "phone": "(202) 555-0188",
            "timezone": "America/Chicago",
            "language": "es",
        },
    )
    sam = _get(sessions, Participant, world.sam.id)
    assert (sam.phone, sam.timezone, sam.language) == ("+12025550188", "America/Chicago", "es")
    assert sam.plan_version == 2
    with sessions() as s:
        assert "participant.edit" in _audit_actions(s, world.sam.id)


def test_appointments_add_move_and_cancel(
    client: FlaskClient, sessions: sessionmaker[Session], world: World, now: datetime
) -> None:
    def only_appointment() -> Appointment:
        with sessions() as s:
            return s.scalars(select(Appointment)).one()

    with time_machine.travel(now, tick=False):
        _as(client, world.coach_a)
        token = csrf(client, "/")
        client.post(
            f"/participants/{world.sam.id}/appointments",
            data={
                "csrf_token": token,
                "kind": "benefits",
                "starts_at": "2026-03-10T14:30",
                "location": "Main St office",
            },
        )
        appt = only_appointment()
        assert appt.starts_at == datetime(2026, 3, 10, 18, 30, tzinfo=UTC)  # 14:30 EDT
        client.post(
            f"/participants/{world.sam.id}/appointments/{appt.id}/move",
            data={"csrf_token": token, "starts_at": "2026-03-11T09:00"},
        )
        appt = only_appointment()
        assert (appt.starts_at, appt.version) == (datetime(2026, 3, 11, 13, 0, tzinfo=UTC), 2)
        page = client.get(f"/participants/{world.sam.id}").get_data(as_text=True)
        assert "Wed 11 Mar, 9:00 AM EDT" in page and "Main St office" in page
        client.post(
            f"/participants/{world.sam.id}/appointments/{appt.id}/cancel",
            data={"csrf_token": token},
        )
        appt = only_appointment()
        assert (appt.status, appt.version) == ("cancelled", 3)
    with sessions() as s:
        actions = set(_audit_actions(s, world.sam.id))
    assert {"appointment.add", "appointment.move", "appointment.cancel"} <= actions


# --- isolation -----------------------------------------------------------------------------


def test_coach_b_gets_404_on_every_route_for_coach_as_participant(
    client: FlaskClient, session: Session, world: World, now: datetime
) -> None:
    appt = make_appointment(session, world.sam, now + timedelta(days=2), now)
    session.commit()
    _as(client, world.coach_b)
    token = csrf(client, "/")
    pid, fid = world.sam.id, world.flag.id
    gets = [f"/participants/{pid}", f"/flags/{fid}"]
    posts = [
        f"/participants/{pid}/reply",
        f"/participants/{pid}/pause",
        f"/participants/{pid}/resume",
        f"/participants/{pid}/details",
        f"/participants/{pid}/appointments",
        f"/participants/{pid}/appointments/{appt.id}/move",
        f"/participants/{pid}/appointments/{appt.id}/cancel",
        f"/flags/{fid}/acknowledge",
        f"/flags/{fid}/resolve",
    ]
    for path in gets:
        assert client.get(path).status_code == 404, path
    for path in posts:
        response = client.post(
            path,
            data={
                "csrf_token": token,
                "body": "hi",
                "outcome": "reached",
                "phone": "+12025550100",
                "timezone": "UTC",
                "language": "en",
                "kind": "other",
                "starts_at": "2026-04-01T10:00",
            },
        )
        assert response.status_code == 404, path
    for path in ("/participants", f"/participants?q={world.sam.first_name}", "/participants.csv"):
        assert world.sam.external_id not in client.get(path).get_data(as_text=True), path
    assert client.get("/api/queue").get_json()["items"] == []
    assert "Sam" not in client.get("/").get_data(as_text=True)
    # Nothing changed, nothing was sent.
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0
    assert session.get(Flag, fid).state == "open"  # type: ignore[union-attr]
    assert session.get(Participant, pid).status == "active"  # type: ignore[union-attr]
    session.rollback()


# --- users and audit -----------------------------------------------------------------------


def test_admin_creates_and_deactivates_users(
    client: FlaskClient, sessions: sessionmaker[Session], world: World
) -> None:
    _as(client, world.admin)
    token = csrf(client, "/users")
    client.post(
        "/users",
        data={
            "csrf_token": token,
            "email": "New@Example.org",
            "name": "New Coach",
            "role": "coach",
            "password": "long enough pw",
            "password2": "long enough pw",
        },
    )
    with sessions() as s:
        new = s.scalars(select(User).where(User.email == "new@example.org")).one()
    fresh = client.application.test_client()
    assert login(fresh, "new@example.org", "long enough pw").status_code == 302
    client.post(f"/users/{new.id}/deactivate", data={"csrf_token": token})
    assert fresh.get("/").status_code == 302  # signed out at once
    assert login(fresh, "new@example.org", "long enough pw").status_code == 401
    with sessions() as s:
        assert {"user.create", "user.deactivate"} <= set(_audit_actions(s))


def test_users_and_audit_are_for_admins_only(client: FlaskClient, world: World) -> None:
    _as(client, world.coordinator)
    assert client.get("/users").status_code == 403
    assert client.get("/audit").status_code == 403
    coach = client.application.test_client()
    _as(coach, world.coach_a)
    assert coach.get("/users").status_code == 403
    assert "/audit" not in coach.get("/").get_data(as_text=True)


def test_audit_log_filters_by_user_participant_action_and_date(
    client: FlaskClient, world: World, now: datetime
) -> None:
    with time_machine.travel(now, tick=False):
        coach = client.application.test_client()
        _as(coach, world.coach_a)
        coach.get(f"/participants/{world.sam.id}")
        _as(client, world.admin)
        page = client.get(
            f"/audit?user={world.coach_a.id}&action=participant.view"
            f"&participant={world.sam.external_id}&from=2026-03-02&to=2026-03-02"
        ).get_data(as_text=True)
        assert "participant.view" in page and world.sam.external_id in page
        empty = client.get("/audit?from=2026-03-03").get_data(as_text=True)
        assert "No entries match" in empty


def test_the_conversation_says_check_ins_are_held_while_a_crisis_flag_is_open_and_resume(
    client: FlaskClient, world: World
) -> None:
    _as(client, world.coach_a)
    page = client.get(f"/participants/{world.sam.id}").get_data(as_text=True)
    assert "held while the crisis flag is open" in page
    token = csrf(client, "/")
    done = client.post(
        f"/flags/{world.flag.id}/resolve",
        data={"csrf_token": token, "outcome": "reached", "note": ""},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "check-ins resume" in done
    page = client.get(f"/participants/{world.sam.id}").get_data(as_text=True)
    assert "held while the crisis flag is open" not in page
    assert "Check-ins are on." in page
