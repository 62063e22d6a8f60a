"""End to end in Chromium: the inbox (issue 15). A participant's signed text reaches the coach's
queue without a reload; a reply at 23:00 their time to a text sent minutes before reaches the
(fake) Twilio at once; "no reply needed" clears a conversation; a crisis text puts the urgent
card first with its own words; a refused reply keeps its text. Screenshots of the queue at
desktop and phone width go to test-artifacts/."""

from __future__ import annotations

import dataclasses
import itertools
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
from bot.models import InboundMessage, OutboundMessage
from bot.services.flags import raise_flag
from bot.transport.twilio import TwilioTransport
from scheduler.tick import tick
from tests.browser.conftest import TWILIO_TOKEN, LiveServer
from tests.factories import TEST_PASSWORD, make_participant, make_user
from tests.scheduler.fake_twilio import FakeTwilio

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CRISIS_TEXT = "i want to kill myself tonight"
_sids = itertools.count(1)


def _zone_at_hour(hour: int) -> str:
    """A real IANA zone where the local hour is `hour` now (Etc/GMT-3 is UTC+3: POSIX signs)."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}" if offset else "Etc/GMT"
        if now.astimezone(ZoneInfo(name)).hour == hour:
            return name
    raise AssertionError(f"no zone at {hour}:00")


def _text(server: LiveServer, sender: str, body: str) -> requests.Response:
    """A text as Twilio posts it: signed with the account's token."""
    url = server.url + "/twilio/inbound"
    form = {
        "MessageSid": f"SM{next(_sids):032d}",
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15550100000",
        "Body": body,
        "NumMedia": "0",
    }
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    response = requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def _login(page: Any, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def _no_sideways_scroll(page: Any, what: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{what} scrolls sideways by {overflow}px"


def _seed_coach(server: LiveServer, **people: str) -> dict[str, Any]:
    """Alex, a coach, with one participant per keyword argument (name -> time zone)."""
    now = datetime.now(UTC)
    with session_scope(server.sessions) as session:
        alex = make_user(session, now, email="alex@example.org", name="Alex Rivera")
        made = {
            name: make_participant(
                session,
                now,
                first_name=name,
                coach_id=alex.id,
                timezone=zone,
                release_date=date.today() - timedelta(days=3),
            )
            for name, zone in people.items()
        }
        return {name: (p.id, p.phone) for name, p in made.items()}


def test_a_text_reaches_the_queue_without_a_reload_and_no_reply_needed_clears_it(
    browser: Any, live_server: LiveServer
) -> None:
    live_server.app.config["QUEUE_POLL_SECONDS"] = 1
    people = _seed_coach(live_server, Dana="America/New_York")
    dana_id, dana_phone = people["Dana"]
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    _login(page, live_server, "alex@example.org")
    assert page.get_by_text("Nothing needs you right now").is_visible()
    page.evaluate("window.__marker = 'same page'")

    words = "Can you call me tomorrow? I lost my job at the warehouse"
    _text(live_server, dana_phone, words)
    item = page.locator(".queue-item--waiting", has_text="Can you call me tomorrow?")
    item.wait_for(timeout=20_000)
    assert page.evaluate("window.__marker") == "same page"  # no reload happened
    assert "Dana" in item.inner_text() and "new" in item.inner_text().lower()
    assert page.locator("#nav-waiting").inner_text().strip().endswith("1")
    _no_sideways_scroll(page, "the queue on a phone")

    item.get_by_role("button", name="No reply needed").click()
    page.wait_for_url(live_server.url + "/")
    assert page.get_by_text("Marked: no reply needed.").is_visible()
    assert page.locator(".queue-item--waiting").count() == 0
    assert page.get_by_text("Nothing needs you right now").is_visible()
    with live_server.sessions() as session:
        text = session.scalars(select(InboundMessage)).one()
        assert (text.participant_id, text.needs_reply, text.answer_kind) == (
            dana_id,
            False,
            "no_reply_needed",
        )
    context.close()


def test_a_reply_at_23_00_to_a_text_sent_minutes_before_reaches_twilio_at_once(
    browser: Any, live_server: LiveServer
) -> None:
    people = _seed_coach(live_server, Sam=_zone_at_hour(23))
    sam_id, sam_phone = people["Sam"]
    _text(live_server, sam_phone, "can't sleep. can we talk tomorrow?")

    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    _login(page, live_server, "alex@example.org")
    page.locator(".queue-item--waiting").get_by_role("link", name=re.compile("Sam")).click()
    page.wait_for_url(re.compile(rf"/participants/{sam_id}"))
    assert page.get_by_text("they texted in the last day: your reply goes at once").is_visible()
    assert page.locator('input[name="when"]').count() == 0  # nothing to choose

    reply = "I'm up too. Calling you in 5 minutes."
    page.get_by_label("Message to Sam").fill(reply)
    page.get_by_role("button", name="Send reply").click()
    notice = page.locator("#thread-notice")
    assert "It goes out now" in notice.inner_text()
    # Shown next to the conversation, where the coach is looking, not only at the page's top.
    thread_box = page.locator("#thread-heading").bounding_box()
    notice_box = notice.bounding_box()
    assert thread_box is not None and notice_box is not None
    assert notice_box["y"] > thread_box["y"]

    config = dataclasses.replace(
        live_server.config,
        twilio_account_sid="AC" + "1" * 32,
        twilio_from_number="+15550100000",
    )
    with FakeTwilio() as twilio:
        twilio_config = dataclasses.replace(config, twilio_api_base=twilio.url)
        tick(
            live_server.sessions,
            TwilioTransport.from_config(twilio_config),
            twilio_config,
            datetime.now(UTC),
            rate_limited=False,
        )
        sent = [(f["To"], f["Body"]) for f in twilio.received]
    assert (sam_phone, reply) in sent
    with live_server.sessions() as session:
        row = session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "coach_reply")
        ).one()
        assert row.provider_sid is not None and row.ignore_quiet_hours
    page.goto(live_server.url + "/")
    assert page.locator(".queue-item--waiting").count() == 0
    context.close()


def test_a_crisis_text_puts_the_urgent_card_first_with_its_words(
    browser: Any, live_server: LiveServer, artifacts: Path
) -> None:
    now = datetime.now(UTC)
    people = _seed_coach(
        live_server,
        Sam="America/New_York",
        Maria="America/Chicago",
        Luis="America/Los_Angeles",
        Jordan="America/New_York",
    )
    with session_scope(live_server.sessions) as session:
        raise_flag(
            session,
            reason="delivery_failed",
            severity="high",
            now=now - timedelta(days=1),
            participant_id=people["Jordan"][0],
        )
        raise_flag(
            session,
            reason="no_reply",
            severity="normal",
            now=now - timedelta(days=2),
            participant_id=people["Luis"][0],
        )
    _text(live_server, people["Maria"][1], "no puedo ir a la cita el martes, lo siento")
    _text(live_server, people["Luis"][1], "ok")
    response = _text(live_server, people["Sam"][1], CRISIS_TEXT)
    assert "988" in response.text
    with session_scope(live_server.sessions) as session:
        # A court reminder sent after the crisis text: the card must still show the words.
        session.add(
            OutboundMessage(
                idempotency_key="e2e-reminder",
                participant_id=people["Sam"][0],
                purpose="reminder",
                channel="sms",
                to_address=people["Sam"][1],
                segments=1,
                status="sent",
                body="Reminder: court on Tuesday at 9:00 AM, 100 Main St.",
                send_after=now,
                created_at=now + timedelta(seconds=1),
                sent_at=now + timedelta(seconds=1),
                attempts=1,
            )
        )

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, live_server, "alex@example.org")
    first = page.locator(".queue-item").first
    assert "Sam" in first.inner_text() and "urgent" in first.inner_text().lower()
    assert f"Their words: {CRISIS_TEXT}" in first.inner_text()
    assert "court" not in first.inner_text()
    waiting = page.locator("#queue-waiting .queue-item")
    assert waiting.count() == 2  # Maria and Luis; Sam's text waits on the urgent card
    assert "no puedo ir" in waiting.first.inner_text()
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(artifacts / f"inbox-queue-{label}.png"), full_page=True)
        _no_sideways_scroll(page, f"the queue at {label} width")

    first.get_by_role("link", name="Flag details").click()
    page.wait_for_url(re.compile(r"/flags/\d+"))
    assert CRISIS_TEXT in page.locator("#trigger").inner_text()
    context.close()


def test_a_refused_reply_keeps_its_text(
    browser: Any, live_server: LiveServer, artifacts: Path
) -> None:
    people = _seed_coach(live_server, Sam="America/New_York")
    sam_id = people["Sam"][0]
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    _login(page, live_server, "alex@example.org")
    page.goto(f"{live_server.url}/participants/{sam_id}")
    typed = "Hey Sam, don't forget your probation check-in on Friday. Call me after?"
    page.get_by_label("Message to Sam").fill(typed)
    page.get_by_role("button", name="Send reply").click()
    box = page.get_by_label("Message to Sam")
    assert box.input_value() == typed
    error = page.locator("#reply-error")
    assert "probation" in error.inner_text()
    _no_sideways_scroll(page, "the refused reply on a phone")
    page.locator("#reply").screenshot(path=str(artifacts / "inbox-refused-reply-phone.png"))
    with live_server.sessions() as session:
        assert session.scalars(select(OutboundMessage)).all() == []
    context.close()
