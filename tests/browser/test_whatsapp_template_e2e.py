"""End to end in Chromium (issue 19, point 5): a coordinator maps the Spanish check-in to an
approved WhatsApp template (its Content SID and variables) on the Messages page; a WhatsApp
participant whose 24-hour window has closed is due that check-in; the worker's pass sends it
through the real Twilio SDK, and what reaches Twilio's HTTP endpoint (a local fake) is the
template, ContentSid and ContentVariables, with no free-text Body. The delivery callback then
shows on the participant's page. A screenshot of the mapping goes to test-artifacts/."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.db import session_scope
from bot.models import Flag, InboundMessage, OutboundMessage, PlannedContact, WhatsAppTemplate
from bot.services.seed import seed_defaults
from bot.transport.factory import make_transport
from bot.transport.twilio import TwilioTransport
from messages.defaults import checkin_variant_key
from scheduler.tick import tick
from tests.browser.conftest import TWILIO_TOKEN, LiveServer
from tests.factories import TEST_PASSWORD, make_participant, make_user
from tests.scheduler.fake_twilio import FakeTwilio

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ACCOUNT_SID = "AC" + "1" * 32
WHATSAPP_FROM = "+15550100001"
CONTENT_SID = "HX" + "0123456789abcdef" * 2
# Day 10 is the default cadence's sixth check-in (days 1, 2, 3, 5, 7, 10, ...): its wording
# is the second of the four that take turns.
CHECKIN_DAY = 10
CHECKIN_KEY = checkin_variant_key(6)
LUCIA_PHONE = "+13125550177"


def _midday_zone(now: datetime) -> str:
    """A real IANA zone where it is early afternoon now, so today's 10:00 check-in is due and
    its window (to 20:00) open whenever the test runs (Etc/GMT-3 is UTC+3: POSIX's sign)."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}" if offset else "Etc/GMT"
        if 12 <= now.astimezone(ZoneInfo(name)).hour <= 15:
            return name
    raise AssertionError("no zone at midday")


def _seed(server: LiveServer, now: datetime) -> dict[str, Any]:
    """The default program; a coordinator; Lucía (Spanish, WhatsApp), released 10 days ago in her zone, coached by
    Alex, whose last message to us came 25 hours ago: her window has closed."""
    zone = _midday_zone(now)
    with session_scope(server.sessions) as session:
        seed_defaults(session, now)  # what `checkin init-db` stores: the program's messages
        coordinator = make_user(
            session, now, email="cora@example.org", name="Cora Mendez", role="coordinator"
        )
        alex = make_user(session, now, email="alex@example.org", name="Alex Rivera")
        lucia = make_participant(
            session,
            now - timedelta(days=CHECKIN_DAY + 1),
            first_name="Lucía",
            phone=LUCIA_PHONE,
            channel="whatsapp",
            language="es",
            timezone=zone,
            coach_id=alex.id,
            release_date=now.astimezone(ZoneInfo(zone)).date() - timedelta(days=CHECKIN_DAY),
        )
        last_message = now - timedelta(hours=25)
        session.add(
            InboundMessage(
                message_sid="SM" + "a1" * 16,
                from_address=f"whatsapp:{LUCIA_PHONE}",
                to_address=f"whatsapp:{WHATSAPP_FROM}",
                channel="whatsapp",
                body="Gracias",
                raw_form={},
                participant_id=lucia.id,
                received_at=last_message,
                processing_state="processed",
                processed_at=last_message,
                needs_reply=False,
            )
        )
        return {"coordinator": coordinator.email, "lucia_id": lucia.id}


def _login(page: Any, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def _status_callback(server: LiveServer, sid: str, status: str) -> requests.Response:
    """Twilio's status callback for `sid`, signed with the account's token."""
    url = server.url + "/twilio/status"
    form = {
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "MessageStatus": status,
        "To": f"whatsapp:{LUCIA_PHONE}",
        "From": f"whatsapp:{WHATSAPP_FROM}",
    }
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def test_a_mapped_spanish_checkin_goes_to_whatsapp_as_its_template_outside_the_window(
    browser: Any, live_server: LiveServer, artifacts: Path
) -> None:
    now = datetime.now(UTC)
    seeded = _seed(live_server, now)

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    _login(page, live_server, seeded["coordinator"])
    page.get_by_role("link", name="Messages").first.click()
    page.wait_for_url(live_server.url + "/templates")
    section = page.locator("#whatsapp")
    assert "No message is mapped to a WhatsApp template yet." in section.inner_text()

    section.get_by_label("Message").select_option(f"{CHECKIN_KEY}:es")
    chosen = section.get_by_label("Message").locator("option:checked").inner_text()
    assert "Check-in" in chosen and "(Spanish)" in chosen
    section.get_by_label("Content SID").fill(CONTENT_SID)
    section.get_by_label("Variables").fill("1=first_name, 2=coach_first_name")
    section.get_by_role("button", name="Map to WhatsApp template").click()
    page.wait_for_url(re.compile(r"/templates#whatsapp$"))
    assert f"WhatsApp template {CONTENT_SID} outside the 24-hour window" in page.inner_text("body")
    row = page.locator(f'#whatsapp tr[data-mapping="{CHECKIN_KEY}:es"]')
    assert row.count() == 1
    assert CONTENT_SID in row.inner_text()
    assert "1=first_name, 2=coach_first_name" in row.inner_text()
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        section.screenshot(path=str(artifacts / f"whatsapp-mapping-{label}.png"))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the Messages page at {label} width scrolls sideways"
    with live_server.sessions() as session:
        mapping = session.scalars(select(WhatsAppTemplate)).one()
        assert (mapping.template_key, mapping.language, mapping.content_sid) == (
            CHECKIN_KEY,
            "es",
            CONTENT_SID,
        )

    # The worker's next pass, with the production transport: the Twilio SDK, its HTTP client
    # pointed at the local fake of Twilio's API.
    config = dataclasses.replace(
        live_server.config,
        twilio_account_sid=ACCOUNT_SID,
        twilio_whatsapp_from=WHATSAPP_FROM,
    )
    with FakeTwilio() as twilio:
        twilio_config = dataclasses.replace(config, twilio_api_base=twilio.url)
        transport = make_transport(twilio_config)
        assert isinstance(transport, TwilioTransport)
        tick(live_server.sessions, transport, twilio_config, now, rate_limited=False)
        arrivals = list(twilio.arrivals)

    assert len(arrivals) == 1, [a.form.get("To") for a in arrivals]
    sent = arrivals[0]
    assert sent.from_sdk
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert "Body" not in sent.form  # no free text outside the window
    assert sent.form == {
        "To": f"whatsapp:{LUCIA_PHONE}",
        "From": f"whatsapp:{WHATSAPP_FROM}",
        "ContentSid": CONTENT_SID,
        "ContentVariables": sent.form["ContentVariables"],
        "StatusCallback": live_server.url + "/twilio/status",
    }
    assert json.loads(sent.form["ContentVariables"]) == {"1": "Lucía", "2": "Alex"}

    with live_server.sessions() as session:
        message = session.scalars(select(OutboundMessage)).one()
        assert message.channel == "whatsapp" and message.purpose == "checkin"
        assert message.status == "queued" and message.provider_sid is not None
        contact = session.get(PlannedContact, message.planned_contact_id)
        assert contact is not None
        assert (contact.occurrence, contact.template_key, contact.state) == (
            f"day-{CHECKIN_DAY}",
            CHECKIN_KEY,
            "sent",
        )
        assert session.scalars(select(Flag)).all() == []  # no template missing, nothing else
        sid = message.provider_sid

    assert _status_callback(live_server, sid, "delivered").status_code == 200
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/participants/{seeded['lucia_id']}")
    thread = page.locator("ol.thread")
    checkin = thread.locator("li.msg--out").last
    assert "Delivered" in checkin.locator(".msg__status").inner_text()
    assert "checkin" in checkin.locator(".msg__meta").inner_text()
    # The browser's own favicon request is a 404; a script or style refused by the Content
    # Security Policy would be a broken page.
    assert [e for e in console_errors if "Content Security Policy" in e] == []
    context.close()
