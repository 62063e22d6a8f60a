"""End to end in Chromium: running enrolment without a terminal (issue 18.1, 18.7) and unknown
numbers (issue 15.7). A coordinator adds a participant and sees the welcome planned, reassigns
them from the list, closes them and sees the planned texts cancelled; a coordinator replies to
an unknown number and enrols it. Screenshots of the list, the new-participant form and a
closed participant at desktop and phone width go to test-artifacts/."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.db import session_scope
from bot.models import Flag, InboundMessage, OutboundMessage, Participant, PlannedContact
from bot.services.templates import seed_default_templates
from tests.browser.conftest import ARTIFACTS, TWILIO_TOKEN, LiveServer
from tests.factories import TEST_PASSWORD, make_participant, make_sent_message, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
STRANGER = "+13125550177"
_sids = itertools.count(1)


def _login(page: Any, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def _no_sideways_scroll(page: Any, what: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{what} scrolls sideways by {overflow}px"


def _shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _seed(server: LiveServer) -> dict[str, int]:
    now = datetime.now(UTC)
    with session_scope(server.sessions) as session:
        seed_default_templates(session, now)
        cora = make_user(
            session, now, email="cora@example.org", name="Cora Diaz", role="coordinator"
        )
        marcus = make_user(session, now, email="marcus@example.org", name="Marcus Lee")
        ana = make_user(session, now, email="ana@example.org", name="Ana Ortiz")
        for n, (first, last) in enumerate(
            [
                ("Ana", "Lopez"),
                ("Ana", "Moreno"),
                ("Sam", None),
                ("Jordan", "Whitfield-Castellanos"),
            ]
        ):
            person = make_participant(
                session,
                now,
                first_name=first,
                last_name=last,
                coach_id=(marcus if n % 2 else ana).id,
                release_date=date.today() - timedelta(days=3 + 9 * n),
                language="es" if n == 1 else "en",
            )
            make_sent_message(
                session,
                person,
                now - timedelta(hours=5 + n),
                body=f"Hi {first}, checking in. How are you doing today?",
                **({"status": "undelivered", "error_code": 30003} if n == 2 else {}),
            )
        return {"cora": cora.id, "marcus": marcus.id, "ana": ana.id}


def test_a_coordinator_adds_reassigns_and_closes_a_participant(
    browser: Any, live_server: LiveServer
) -> None:
    users = _seed(live_server)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    _login(page, live_server, "cora@example.org")

    page.goto(live_server.url + "/participants")
    page.get_by_role("link", name="Add a participant").click()
    page.wait_for_url(live_server.url + "/participants/new")
    _shoot(page, "participant-new-desktop")
    # A bad number is refused with the importer's words next to the field; nothing is saved.
    page.get_by_label("First name").fill("Dana")
    page.get_by_label("Last name").fill("Reyes")
    page.get_by_label("Mobile number").fill("555-01")
    page.get_by_label("Release date").fill(date.today().isoformat())
    page.get_by_label("Time zone").select_option("America/Chicago")
    page.get_by_label("Coach").select_option(label="Marcus Lee")
    page.get_by_role("button", name="Add participant").click()
    assert page.get_by_text("Mobile number: '555-01' is not a valid mobile number").is_visible()
    _shoot(page, "participant-new-error-desktop")
    assert page.get_by_label("Last name").input_value() == "Reyes"
    page.get_by_label("Mobile number").fill("(312) 555-0143")
    page.get_by_role("button", name="Add participant").click()
    page.get_by_text("Dana Reyes is enrolled").wait_for()
    assert (
        "welcome"
        in page.locator("#checkins-heading + *, section:has(#checkins-heading)").first.inner_text()
    )
    with live_server.sessions() as session:
        dana = session.scalars(select(Participant).where(Participant.first_name == "Dana")).one()
        assert dana.coach_id == users["marcus"]
        planned = session.scalars(
            select(PlannedContact.kind).where(
                PlannedContact.participant_id == dana.id, PlannedContact.state == "planned"
            )
        ).all()
        assert "welcome" in planned
        dana_id = dana.id

    # Reassign from the list: tick Dana, choose Ana Ortiz.
    page.goto(live_server.url + "/participants?sort=recent")
    _shoot(page, "participants-desktop")
    page.get_by_label("Select Dana Reyes").check()
    page.get_by_label("Reassign the ticked people to").select_option(label="Ana Ortiz")
    page.get_by_role("button", name="Reassign").click()
    page.get_by_text("Reassigned 1 person.").wait_for()
    with live_server.sessions() as session:
        assert session.get_one(Participant, dana_id).coach_id == users["ana"]

    # Close with a reason: every planned text is cancelled, and the page says so.
    page.goto(f"{live_server.url}/participants/{dana_id}")
    page.get_by_label("Reason for closing").fill("moved out of state")
    page.get_by_role("button", name="Close enrolment").click()
    page.locator("#closed-banner").wait_for()
    assert "moved out of state" in page.locator("#closed-banner").inner_text()
    assert page.get_by_text("planned text").first.is_visible()
    assert page.get_by_text("Nothing planned while check-ins are off").is_visible()
    page.get_by_text("Edit Dana's details").click()
    _shoot(page, "participant-closed-desktop")
    with live_server.sessions() as session:
        states = set(
            session.scalars(
                select(PlannedContact.state).where(PlannedContact.participant_id == dana_id)
            )
        )
        assert states == {"cancelled"}
    context.close()

    phone = browser.new_context(viewport=PHONE)
    page = phone.new_page()
    _login(page, live_server, "cora@example.org")
    for path, name in (
        ("/participants", "participants-phone"),
        ("/participants/new", "participant-new-phone"),
        (f"/participants/{dana_id}", "participant-closed-phone"),
    ):
        page.goto(live_server.url + path)
        _no_sideways_scroll(page, f"{path} on a phone")
        _shoot(page, name)
    phone.close()


def _text(server: LiveServer, sender: str, body: str) -> None:
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


def test_a_coordinator_replies_to_an_unknown_number_and_enrols_it(
    browser: Any, live_server: LiveServer
) -> None:
    _seed(live_server)
    _text(live_server, STRANGER, "hi, my PO gave me this number. this is Terrell")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, live_server, "cora@example.org")
    page.locator(".queue-item--waiting", has_text="this is Terrell").get_by_role(
        "link"
    ).first.click()
    page.wait_for_url("**/unknown/*")
    assert page.get_by_text("hi, my PO gave me this number").is_visible()
    page.get_by_label("Message to this number").fill(
        "Hi Terrell, welcome! Your coach will text you soon."
    )
    page.get_by_role("button", name="Send reply").click()
    page.get_by_text("Reply queued (1 text). It goes out now.").wait_for()
    _shoot(page, "unknown-number-desktop")
    with live_server.sessions() as session:
        reply = session.scalars(
            select(OutboundMessage).where(
                OutboundMessage.to_address == STRANGER, OutboundMessage.created_by_id.is_not(None)
            )
        ).one()
        assert (reply.participant_id, reply.purpose, reply.status) == (
            None,
            "coach_reply",
            "pending",
        )

    page.get_by_role("link", name="Enrol this number").click()
    assert page.get_by_label("Mobile number").input_value() == STRANGER
    page.get_by_label("First name").fill("Terrell")
    page.get_by_label("Release date").fill((date.today() - timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Add participant").click()
    page.get_by_text("Terrell is enrolled").wait_for()
    # The number's texts and the reply are in the new participant's conversation.
    assert page.get_by_text("hi, my PO gave me this number").is_visible()
    assert page.get_by_text("Hi Terrell, welcome!").is_visible()
    with live_server.sessions() as session:
        text = session.scalars(
            select(InboundMessage).where(InboundMessage.from_address == STRANGER)
        ).one()
        assert text.participant_id is not None
        flag = session.scalars(select(Flag).where(Flag.reason == "unknown_sender")).one()
        assert flag.state == "resolved"
    context.close()
