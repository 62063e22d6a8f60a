"""End to end in Chromium: a signed crisis text arrives through the real webhook; the coach
signs in, sees it first, opens it, replies, acknowledges and resolves; another coach cannot
see it. Screenshots of the queue and the conversation at phone and desktop width are saved in
test-artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.db import session_scope
from bot.models import Flag, InboundMessage, OutboundMessage, User
from bot.services.flags import raise_flag
from scheduler.tick import tick
from tests.browser.conftest import TWILIO_TOKEN, LiveServer
from tests.factories import TEST_PASSWORD, make_participant, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
CRISIS_TEXT = "i want to kill myself tonight"


def _midday_zone(now: datetime) -> str:
    """A real IANA zone where it is early afternoon now, so the reply is outside quiet hours
    whenever the test runs (Etc/GMT-3 is UTC+3: the sign is POSIX's)."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}" if offset else "Etc/GMT"
        if 12 <= now.astimezone(ZoneInfo(name)).hour <= 15:
            return name
    raise AssertionError("no zone at midday")


def _seed(server: LiveServer) -> dict[str, Any]:
    now = datetime.now(UTC)
    with session_scope(server.sessions) as session:
        a = make_user(session, now, email="alex@example.org", name="Alex Rivera")
        b = make_user(session, now, email="bea@example.org", name="Bea Okafor")
        sam = make_participant(
            session,
            now,
            first_name="Sam",
            phone="+13125550142",
            coach_id=a.id,
            timezone=_midday_zone(now),
            release_date=date.today() - timedelta(days=3),
        )
        # Other work in Alex's queue, so "urgent first" means something.
        for name, reason, severity, days in (
            ("Maria", "no_reply", "normal", 3),
            ("Luis", "delivery_failed", "high", 1),
            ("Jordan", "unconfirmed_appointment", "normal", 2),
        ):
            person = make_participant(session, now, first_name=name, coach_id=a.id)
            raise_flag(
                session,
                reason=reason,
                severity=severity,
                now=now - timedelta(days=days),
                participant_id=person.id,
            )
        session.add(
            OutboundMessage(
                idempotency_key="seed-checkin",
                participant_id=sam.id,
                purpose="checkin",
                channel="sms",
                to_address=sam.phone,
                segments=1,
                status="delivered",
                body="Hi Sam, it's Alex from Homecoming Peers. How are you doing today?",
                send_after=now - timedelta(hours=3),
                created_at=now - timedelta(hours=3),
                sent_at=now - timedelta(hours=3),
                attempts=1,
            )
        )
        return {"sam_id": sam.id, "sam_phone": sam.phone, "a": a.email, "b": b.email}


def _post_signed_inbound(server: LiveServer, sender: str, body: str) -> requests.Response:
    url = server.url + "/twilio/inbound"
    form = {
        "MessageSid": "SM" + "e2e0" * 8,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15550100000",
        "Body": body,
        "NumMedia": "0",
    }
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def _login(page: Any, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def _shoot(page: Any, artifacts: Path, name: str) -> None:
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(artifacts / f"{name}-{label}.png"), full_page=True)
        # Nothing may be wider than the screen: no sideways scrolling on a phone.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {label} width scrolls sideways by {overflow}px"


def _run_the_worker_once(server: LiveServer) -> None:
    """What `checkin worker` does on its next timer tick: plan, send due, sweep."""
    tick(server.sessions, server.transport, server.config, datetime.now(UTC), rate_limited=False)


def test_coach_answers_a_crisis_text_end_to_end(
    browser: Any, live_server: LiveServer, artifacts: Path
) -> None:
    seeded = _seed(live_server)
    response = _post_signed_inbound(live_server, seeded["sam_phone"], CRISIS_TEXT)
    assert response.status_code == 200, response.text
    assert "988" in response.text  # the crisis reply, in the same request
    with live_server.sessions() as session:
        stored = session.scalars(select(InboundMessage)).one()
        assert stored.participant_id == seeded["sam_id"]
        flag = session.scalars(select(Flag).where(Flag.reason == "crisis")).one()
        assert flag.severity == "urgent"

    console_errors: list[str] = []
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    _login(page, live_server, seeded["a"])

    first = page.locator(".queue-item").first
    assert "Sam" in first.inner_text()
    assert "urgent" in first.inner_text().lower()
    assert CRISIS_TEXT in first.inner_text()
    assert page.locator(".queue-item").count() == 4
    _shoot(page, artifacts, "queue")

    page.set_viewport_size(DESKTOP)
    first.get_by_role("link", name=re.compile("Sam")).click()
    page.wait_for_url(re.compile(rf"/participants/{seeded['sam_id']}"))
    assert page.get_by_text(CRISIS_TEXT).is_visible()
    assert page.locator(f"#flag-{flag.id}").is_visible()
    _shoot(page, artifacts, "conversation")

    page.set_viewport_size(PHONE)
    reply = "Sam, I'm here for you. I'm calling you right now - please pick up."
    page.get_by_label("Message to Sam").fill(reply)
    assert "1 text" in page.locator("#reply-count").inner_text()
    page.get_by_role("button", name="Send reply").click()
    assert page.get_by_text("Reply queued").is_visible()
    with live_server.sessions() as session:
        queued = session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "coach_reply")
        ).one()
        alex = session.scalars(select(User).where(User.email == seeded["a"])).one()
        assert (queued.body, queued.created_by_id, queued.to_address) == (
            reply,
            alex.id,
            seeded["sam_phone"],
        )
    _run_the_worker_once(live_server)
    sent = [r.body for r in live_server.transport.messages_to(seeded["sam_phone"])]
    assert reply in sent

    page.get_by_role("button", name="Acknowledge: I'm on it").click()
    assert page.get_by_text("Acknowledged").first.is_visible()
    # Once acknowledged, the resolve form is already open.
    page.get_by_label("What happened?").select_option("reached")
    page.get_by_label("Note (for the team; never texted)").fill("Talked on the phone; safe.")
    page.get_by_role("button", name="Resolve").click()
    assert page.get_by_text("Resolved. Their check-ins resume with the next pass.").is_visible()
    with live_server.sessions() as session:
        done = session.get(Flag, flag.id)
        assert done is not None and (done.state, done.outcome) == ("resolved", "reached")
    page.goto(live_server.url + "/")
    assert "Sam" not in page.locator("#queue-list").inner_text()
    assert [e for e in console_errors if "Content Security Policy" in e] == []
    context.close()

    other = browser.new_context(viewport=PHONE)
    page_b = other.new_page()
    _login(page_b, live_server, seeded["b"])
    assert page_b.locator(".queue-item").count() == 0
    assert page_b.get_by_text("Nothing needs you right now").is_visible()
    result = page_b.goto(f"{live_server.url}/participants/{seeded['sam_id']}")
    assert result is not None and result.status == 404
    result = page_b.goto(f"{live_server.url}/flags/{flag.id}")
    assert result is not None and result.status == 404
    other.close()


def test_queue_updates_itself_without_a_reload(
    browser: Any, live_server: LiveServer, artifacts: Path
) -> None:
    live_server.app.config["QUEUE_POLL_SECONDS"] = 1
    now = datetime.now(UTC)
    with session_scope(live_server.sessions) as session:
        coach = make_user(session, now, email="alex@example.org")
        person = make_participant(session, now, first_name="Terrell", coach_id=coach.id)
        person_id = person.id
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    _login(page, live_server, "alex@example.org")
    assert page.get_by_text("Nothing needs you right now").is_visible()
    page.evaluate("window.__marker = 'same page'")
    with session_scope(live_server.sessions) as session:
        raise_flag(session, reason="crisis", severity="urgent", now=now, participant_id=person_id)
    page.locator(".queue-item", has_text="Terrell").wait_for(timeout=10_000)
    assert page.evaluate("window.__marker") == "same page"  # no reload happened
    assert page.get_by_text("Nothing needs you right now").is_hidden()
    context.close()


def test_keyboard_reaches_the_main_content_through_the_skip_link(
    browser: Any, live_server: LiveServer
) -> None:
    now = datetime.now(UTC)
    with session_scope(live_server.sessions) as session:
        make_user(session, now, email="alex@example.org")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, live_server, "alex@example.org")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to main content"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    context.close()
