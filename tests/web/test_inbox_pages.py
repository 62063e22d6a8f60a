"""The inbox in the dashboard: the queue's sections, "no reply needed", the navigation's count,
and a staff reply that goes at once at any hour (DESIGN.md §1 "Time", §2 "Inbox")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import AuditLog, InboundMessage, OutboundMessage
from bot.services.flags import raise_flag
from tests.factories import make_participant, make_sent_message, make_user
from tests.web.dashboard_helpers import csrf, login

NIGHT = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 23:00 in New York


def _text(
    session: Session, participant_id: int | None, address: str, body: str, at: datetime
) -> int:
    message = InboundMessage(
        message_sid=f"SM{address[-4:]}{int(at.timestamp())}",
        from_address=address,
        to_address="+15550100000",
        channel="sms",
        body=body,
        raw_form={},
        participant_id=participant_id,
        received_at=at,
        processing_state="processed",
        intent="none",
    )
    session.add(message)
    session.flush()
    return message.id


def test_queue_lists_urgent_then_waiting_oldest_first_then_other_flags(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="a@example.org")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    maria = make_participant(session, now, first_name="Maria", coach_id=coach.id)
    luis = make_participant(session, now, first_name="Luis", coach_id=coach.id)
    jo = make_participant(session, now, first_name="Jo", coach_id=coach.id)
    trigger = _text(session, sam.id, sam.phone, "i want to die", now - timedelta(hours=1))
    raise_flag(
        session,
        reason="crisis",
        severity="urgent",
        now=now - timedelta(hours=1),
        participant_id=sam.id,
        detail={"inbound_message_id": trigger},
    )
    # A court reminder sent after the crisis text must not replace it on the card.
    make_sent_message(session, sam, now - timedelta(minutes=10), purpose="reminder", body="Court")
    _text(
        session, maria.id, maria.phone, "no puedo ir a la cita\nlo siento", now - timedelta(hours=2)
    )
    _text(session, luis.id, luis.phone, "Can you call me tomorrow?", now - timedelta(hours=5))
    raise_flag(session, reason="no_reply", severity="normal", now=now, participant_id=jo.id)
    session.commit()
    with time_machine.travel(now, tick=False):
        assert login(client, "a@example.org").status_code == 302
        data = client.get("/api/queue").get_json()
        page = client.get("/").get_data(as_text=True)
    urgent = [i for i in data["items"] if i["urgent"]]
    assert [i["label"].split()[0] for i in urgent] == ["Sam"]
    assert urgent[0]["preview"] == "i want to die" and urgent[0]["preview_is_trigger"]
    assert urgent[0]["waiting_age"] == "1 h ago"
    assert [(w["label"].split()[0], w["first_line"], w["age"]) for w in data["waiting"]] == [
        ("Luis", "Can you call me tomorrow?", "5 h ago"),
        ("Maria", "no puedo ir a la cita", "2 h ago"),
    ]
    assert data["waiting_count"] == 3
    assert [i["label"].split()[0] for i in data["items"] if not i["urgent"]] == ["Jo"]
    assert page.index("i want to die") < page.index("Can you call me") < page.index("no puedo")
    assert page.index("no puedo") < page.index('id="others-heading"')
    assert re.search(r'id="nav-waiting"[^>]*>.*?3</span>', page, re.S)


def test_coordinators_see_every_caseload_with_the_coach_and_unknown_numbers(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, name="Alex Rivera")
    make_user(session, now, email="cora@example.org", role="coordinator")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    _text(session, sam.id, sam.phone, "hello?", now - timedelta(hours=1))
    _text(session, None, "+13125550999", "who is this", now)
    session.commit()
    with time_machine.travel(now, tick=False):
        assert login(client, "cora@example.org").status_code == 302
        data = client.get("/api/queue").get_json()
    assert [(w["label"], w["coach"]) for w in data["waiting"]] == [
        (f"Sam ({sam.external_id})", "Alex Rivera"),
        ("Unknown number +1******0999", None),
    ]


def test_no_reply_needed_on_the_queue_clears_the_conversation_with_who_and_when(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="a@example.org")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    first = _text(session, sam.id, sam.phone, "ok thanks", now - timedelta(hours=1))
    _text(session, sam.id, sam.phone, "see you", now - timedelta(minutes=30))
    session.commit()
    with time_machine.travel(now, tick=False):
        assert login(client, "a@example.org").status_code == 302
        without_token = client.post(f"/inbox/{first}/no-reply-needed")
        assert without_token.status_code == 400
        response = client.post(
            f"/inbox/{first}/no-reply-needed", data={"csrf_token": csrf(client, "/")}
        )
        assert response.status_code == 302
        assert client.get("/api/queue").get_json()["waiting"] == []
    session.expire_all()
    rows = session.scalars(select(InboundMessage)).all()
    assert {(r.needs_reply, r.answer_kind, r.answered_by_user_id) for r in rows} == {
        (False, "no_reply_needed", coach.id)
    }
    assert all(r.answered_at == now for r in rows)
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "inbox.no_reply_needed"))
    assert [(a.user_id, a.participant_id, a.detail) for a in audit] == [
        (coach.id, sam.id, {"texts": 2, "inbound_message_id": first})
    ]


def test_no_reply_needed_outside_the_caseload_is_404(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="a@example.org")
    other = make_user(session, now)
    jo = make_participant(session, now, coach_id=other.id)
    theirs = _text(session, jo.id, jo.phone, "hi", now)
    unknown = _text(session, None, "+13125550999", "hi", now)
    session.commit()
    assert login(client, "a@example.org").status_code == 302
    token = csrf(client, "/")
    for message_id in (theirs, unknown, 999999):
        response = client.post(f"/inbox/{message_id}/no-reply-needed", data={"csrf_token": token})
        assert response.status_code == 404
    session.expire_all()
    assert all(m.needs_reply for m in session.scalars(select(InboundMessage)))


def test_no_reply_needed_on_the_conversation_page(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="a@example.org")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    _text(session, sam.id, sam.phone, "thanks!", now - timedelta(hours=2))
    session.commit()
    with time_machine.travel(now, tick=False):
        assert login(client, "a@example.org").status_code == 302
        page = client.get(f"/participants/{sam.id}").get_data(as_text=True)
        assert "Waiting for a reply" in page
        response = client.post(
            f"/participants/{sam.id}/no-reply-needed",
            data={"csrf_token": csrf(client, "/")},
            follow_redirects=True,
        )
    page = response.get_data(as_text=True)
    assert re.search(r'id="thread-notice".*Marked: no reply needed', page, re.S)
    assert 'id="waiting"' not in page


def test_a_reply_at_23_00_to_a_text_sent_at_22_55_is_due_at_once_despite_quiet_hours(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="a@example.org")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    _text(session, sam.id, sam.phone, "can't sleep, can we talk", NIGHT - timedelta(minutes=5))
    session.commit()
    with time_machine.travel(NIGHT, tick=False):
        assert login(client, "a@example.org").status_code == 302
        page = client.get(f"/participants/{sam.id}").get_data(as_text=True)
        assert 'name="when"' not in page  # no choice to make: it answers a text
        assert "your reply goes at once" in page
        response = client.post(
            f"/participants/{sam.id}/reply",
            data={"body": "I'm here. Calling you now.", "csrf_token": csrf(client, "/")},
            follow_redirects=True,
        )
    page = response.get_data(as_text=True)
    assert re.search(r'id="thread-notice".*Reply queued \(1 text\)\. It goes out now', page, re.S)
    session.expire_all()
    message = session.scalars(select(OutboundMessage)).one()
    assert (message.send_after, message.ignore_quiet_hours) == (NIGHT, True)
    text = session.scalars(select(InboundMessage)).one()
    assert (text.needs_reply, text.answer_kind, text.answered_by_user_id) == (
        False,
        "reply",
        coach.id,
    )


def test_in_quiet_hours_the_coach_may_choose_to_send_now(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="a@example.org")
    dee = make_participant(session, now, first_name="Dee", coach_id=coach.id)
    session.commit()
    with time_machine.travel(NIGHT, tick=False):
        assert login(client, "a@example.org").status_code == 302
        client.post(
            f"/participants/{dee.id}/reply",
            data={"body": "Sorry it's late", "when": "now", "csrf_token": csrf(client, "/")},
        )
    message = session.scalars(select(OutboundMessage)).one()
    assert (message.send_after, message.ignore_quiet_hours) == (NIGHT, True)


def test_a_refused_reply_keeps_the_typed_text_and_shows_the_reason_next_to_the_box(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="a@example.org")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    session.commit()
    assert login(client, "a@example.org").status_code == 302
    typed = "Don't forget your probation meeting & bring ID"
    response = client.post(
        f"/participants/{sam.id}/reply", data={"body": typed, "csrf_token": csrf(client, "/")}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    box = re.search(r'<textarea id="reply-body"[^>]*>(.*?)</textarea>', page, re.S)
    assert box and box.group(1) == "Don&#39;t forget your probation meeting &amp; bring ID"
    error = re.search(r'<p class="field-error" id="reply-error"[^>]*>(.*?)</p>', page, re.S)
    assert error and "Please rephrase without: probation" in error.group(1)
    assert page.index('id="reply-error"') < page.index('id="reply-body"')
    assert session.scalars(select(OutboundMessage)).all() == []


def test_the_flag_page_shows_the_text_that_raised_the_flag(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="a@example.org")
    sam = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    trigger = _text(session, sam.id, sam.phone, "nobody would miss me", now - timedelta(hours=1))
    flag = raise_flag(
        session,
        reason="crisis",
        severity="urgent",
        now=now - timedelta(hours=1),
        participant_id=sam.id,
        detail={"inbound_message_id": trigger},
    ).flag
    _text(session, sam.id, sam.phone, "ok", now - timedelta(minutes=5))
    make_sent_message(session, sam, now, purpose="reminder", body="Reminder: court at 9")
    session.commit()
    assert flag.trigger_message_id == trigger
    assert login(client, "a@example.org").status_code == 302
    page = client.get(f"/flags/{flag.id}").get_data(as_text=True)
    section = re.search(r'id="trigger".*?</section>', page, re.S)
    assert section and "nobody would miss me" in section.group(0)
    assert "court" not in section.group(0)
