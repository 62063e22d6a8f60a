"""A coordinator edits the Spanish check-in in a real browser: preview and segment count while
typing, save, the Spanish participant's next check-in uses it, restore brings the old one back,
and unsafe templates are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.models import OutboundMessage, PlannedContact, Template
from bot.services.templates import participant_context, render_message, seed_default_templates
from scheduler.plan import plan
from scheduler.tick import tick
from tests.factories import TEST_PASSWORD, make_participant, make_user

from .coordinator_support import ARTIFACTS, LiveApp, browser_page, live_app, sign_in

__all__ = ["browser_page", "live_app"]  # fixtures used by name below

pytestmark = pytest.mark.browser
NEW_TEXT = "Hola {{ first_name }}, ¿cómo va la semana? Cuéntame, aquí estoy. {{ coach_first_name }}"


def _seed(live: LiveApp) -> dict[str, Any]:
    now = datetime.now(UTC)
    with live.sessions() as session:
        seed_default_templates(session, now)
        make_user(
            session, now, role="coordinator", email="cora@example.org", name="Cora Coordinator"
        )
        coach = make_user(session, now, email="rosa@example.org", name="Rosa Diaz")
        # Released tomorrow (New York): the welcome is the first contact and the day-1
        # check-in, the first of the cadence, uses variant checkin.1.
        tomorrow = now.astimezone(ZoneInfo("America/New_York")).date() + timedelta(days=1)
        person = make_participant(
            session,
            now,
            first_name="Luis",
            language="es",
            coach_id=coach.id,
            phone="+13125550177",
            timezone="America/New_York",
            release_date=tomorrow,
        )
        template = session.scalars(
            select(Template).where(Template.key == "checkin.1", Template.language == "es")
        ).one()
        session.commit()
        return {"template_id": template.id, "original": template.body, "participant_id": person.id}


def _next_spanish_checkin(live: LiveApp, participant_id: int) -> str:
    from bot.models import Participant

    with live.sessions() as session:
        person = session.get(Participant, participant_id)
        assert person is not None
        context = participant_context(session, person, live.config)
        return render_message(session, "checkin.1", person.language, context)


def _next_checkin(live: LiveApp, participant_id: int) -> PlannedContact:
    """The participant's next check-in as the real planner plans it."""
    now = datetime.now(UTC)
    with live.sessions() as session:
        plan(session, now)
        session.commit()
        contact = session.scalars(
            select(PlannedContact)
            .where(
                PlannedContact.participant_id == participant_id,
                PlannedContact.kind == "checkin",
                PlannedContact.state == "planned",
                PlannedContact.send_after > now,
            )
            .order_by(PlannedContact.send_after)
        ).first()
        assert contact is not None
        session.expunge(contact)
        return contact


def test_coordinator_edits_previews_saves_and_restores_the_spanish_checkin(
    live_app: LiveApp, browser_page: Any
) -> None:
    page, base = browser_page, live_app.url
    seeded = _seed(live_app)
    # The template edited below is the variant Luis's next check-in will use.
    next_checkin = _next_checkin(live_app, seeded["participant_id"])
    assert next_checkin.template_key == "checkin.1"
    sign_in(page, base, "cora@example.org", TEST_PASSWORD)

    page.click("text=Messages")
    page.wait_for_url(f"{base}/templates")
    page.screenshot(path=str(ARTIFACTS / "templates-list-desktop.png"), full_page=False)
    page.click(f'a[href="/templates/{seeded["template_id"]}"]')
    page.wait_for_url(f"{base}/templates/{seeded['template_id']}")

    page.fill("#body", NEW_TEXT)
    preview = page.locator("#preview-text")
    preview.filter(has_text="Hola Maria, ¿cómo va la semana?").wait_for()
    segments = page.locator("#preview-segments")
    assert "UCS-2" in segments.inner_text() and "2 segments" not in segments.inner_text()
    assert "1 segment" in segments.inner_text()
    assert page.locator("#preview-sensitive").is_hidden()
    page.screenshot(path=str(ARTIFACTS / "template-editor-preview-desktop.png"), full_page=True)

    # A sensitive word shows a warning while typing (it is a warning, not a refusal).
    page.fill("#body", NEW_TEXT + " Mañana es la corte.")
    page.locator("#preview-sensitive").filter(has_text="corte").wait_for()
    page.screenshot(path=str(ARTIFACTS / "template-editor-sensitive-warning.png"), full_page=True)

    page.fill("#body", NEW_TEXT)
    page.locator("#preview-sensitive").wait_for(state="hidden")
    page.click("text=Save as a new version")
    page.locator(".notice--success").filter(has_text="Saved as version 2").wait_for()
    assert _next_spanish_checkin(live_app, seeded["participant_id"]) == (
        "Hola Luis, ¿cómo va la semana? Cuéntame, aquí estoy. Rosa"
    )
    # The real scheduler pass at the slot of that check-in sends Luis the new wording.
    summary = tick(
        live_app.sessions,
        live_app.transport,
        live_app.config,
        next_checkin.send_after,
        rate_limited=False,
    )
    assert summary.send.sent >= 1
    with live_app.sessions() as session:
        sent = session.scalars(
            select(OutboundMessage).where(OutboundMessage.planned_contact_id == next_checkin.id)
        ).one()
        # Handed to the (simulated) provider, which answers "queued" as Twilio does.
        assert sent.provider_sid is not None and sent.purpose == "checkin"
    texts = [m.body for m in live_app.transport.messages_to("+13125550177")]
    assert "Hola Luis, ¿cómo va la semana? Cuéntame, aquí estoy. Rosa" in texts
    assert sent.body == "Hola Luis, ¿cómo va la semana? Cuéntame, aquí estoy. Rosa"

    page.click("text=Restore version 1")
    page.locator(".notice--success").filter(has_text="Restored version 1 as version 3").wait_for()
    page.screenshot(path=str(ARTIFACTS / "template-editor-restored-desktop.png"), full_page=True)
    assert page.input_value("#body") == seeded["original"]
    assert _next_spanish_checkin(live_app, seeded["participant_id"]).startswith(
        "Hola Luis, soy Rosa."
    )

    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    page.screenshot(path=str(ARTIFACTS / "template-editor-phone.png"), full_page=True)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Hola {{ ''.__class__ }}", "attribute and item access"),
        ("Hola {{ apellido }}", "unknown placeholder 'apellido'"),
    ],
)
def test_unsafe_templates_are_refused_in_the_preview_and_at_save(
    live_app: LiveApp, browser_page: Any, body: str, reason: str
) -> None:
    page, base = browser_page, live_app.url
    seeded = _seed(live_app)
    sign_in(page, base, "cora@example.org", TEST_PASSWORD)
    page.goto(f"{base}/templates/{seeded['template_id']}")

    page.fill("#body", body)
    page.locator("#preview-error").filter(has_text=reason).wait_for()
    assert page.locator("#preview-text").inner_text() == ""
    page.click("text=Save as a new version")
    alert = page.locator("#save-error")
    alert.wait_for()
    assert "Not saved." in alert.inner_text() and "Line 1, column 6" in alert.inner_text()
    assert reason in alert.inner_text()
    name = "class" if "__class__" in body else "unknown"
    page.screenshot(path=str(ARTIFACTS / f"template-editor-refused-{name}.png"), full_page=True)
    with live_app.sessions() as session:
        template = session.get(Template, seeded["template_id"])
        assert (
            template is not None and template.version == 1 and template.body == seeded["original"]
        )


def test_the_reminder_preview_shows_a_typed_sensitive_place_as_the_neutral_phrase(
    live_app: LiveApp, browser_page: Any
) -> None:
    page, base = browser_page, live_app.url
    _seed(live_app)
    with live_app.sessions() as session:
        reminder = session.scalars(
            select(Template.id).where(
                Template.key == "reminder.court.1d", Template.language == "es"
            )
        ).one()
    sign_in(page, base, "cora@example.org", TEST_PASSWORD)
    page.goto(f"{base}/templates/{reminder}")
    note = page.locator("#preview-place-note")
    assert note.is_hidden()
    page.fill("#preview-place", "County Cоurt Room 3")  # a Cyrillic о
    note.filter(has_text="sensitive word").wait_for()
    preview = page.locator("#preview-text")
    preview.filter(has_text="en el lugar que te indicaron.").wait_for()
    assert "Room 3" not in preview.inner_text()
    page.screenshot(path=str(ARTIFACTS / "template-editor-sensitive-place.png"), full_page=True)
    page.fill("#preview-place", "Main St Library")
    preview.filter(has_text="en Main St Library.").wait_for()
    note.wait_for(state="hidden")
