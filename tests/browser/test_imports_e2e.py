"""Imports in Chromium: a coordinator uploads a participants CSV with one bad line and sees the
line named with nothing written; fixes it, sees the counts, confirms, and the people are there.
Screenshots of the refusal and the preview at desktop and phone width go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.models import Participant, PendingImport, PlannedContact
from tests.factories import TEST_PASSWORD, make_participant, make_user

from .coordinator_support import ARTIFACTS, LiveApp, live_app, sign_in

__all__ = ["live_app"]  # fixture used by name below

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
HEADER = "external_id,first_name,phone,release_date,timezone,language,coach_email,channel\n"
ROWS = (
    "R-100,Maria,(202) 555-0101,2026-03-01,,es,rosa@example.org,\n"
    "R-101,Luis,312-555-0102,2026-03-05,America/Denver,,,whatsapp\n"
    "R-102,Dee,202-555-0177,2026-02-20,America/Chicago,,,\n"
)
BAD_LINE = "R-103,Ana,555-01,2026-03-07,,,,\n"


def _seed(live: LiveApp) -> None:
    now = datetime.now(UTC)
    with live.sessions() as session:
        make_user(session, now, role="coordinator", email="cora@example.org", name="Cora Diaz")
        make_user(session, now, email="rosa@example.org", name="Rosa Diaz")
        # Already on file: the import moves her release date (updated and re-planned).
        make_participant(
            session,
            now,
            external_id="R-102",
            first_name="Dee",
            phone="+12025550177",
            timezone="America/Chicago",
            release_date=date(2026, 2, 18),
        )
        session.commit()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page of the session's Chromium (tests/browser/conftest.py): one Playwright per run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=DESKTOP)
    new_page = context.new_page()
    new_page.set_default_timeout(10_000)
    try:
        yield new_page
    finally:
        context.close()


def _count(live: LiveApp, model: type) -> int:
    with live.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _choose(page: Any, text: str, name: str = "people.csv") -> None:
    page.check("input[name=kind][value=participants]")
    page.set_input_files(
        "#file", files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode()}]
    )
    page.click("#import-form button[type=submit]")


def test_a_bad_line_writes_nothing_and_a_good_file_previews_then_imports(
    live_app: LiveApp, page: Any
) -> None:
    live = live_app
    _seed(live)
    sign_in(page, live.url, "cora@example.org", TEST_PASSWORD)
    page.click("nav >> text=Imports")
    page.wait_for_url(f"{live.url}/imports")

    # One bad line: the page names it, and nothing is kept or written.
    _choose(page, HEADER + ROWS + BAD_LINE)
    errors = page.locator("#import-errors li")
    assert errors.all_inner_texts() == ["line 5: phone: '555-01' is not a valid mobile number"]
    assert "Nothing was imported" in page.inner_text("#import-problem")
    page.screenshot(path=str(ARTIFACTS / "imports-bad-line-desktop.png"), full_page=True)
    assert _count(live, Participant) == 1
    assert _count(live, PendingImport) == 0

    # The fixed file: a preview with the counts, still nothing written.
    _choose(page, HEADER + ROWS)
    page.wait_for_url(f"{live.url}/imports/*")
    counts = {
        key: int(page.inner_text(f"[data-count={key}]"))
        for key in ("created", "updated", "unchanged", "replanned")
    }
    assert counts == {"created": 2, "updated": 1, "unchanged": 0, "replanned": 1}
    assert "Nothing has been written yet" in page.inner_text("#import-not-yet")
    assert _count(live, Participant) == 1
    page.screenshot(path=str(ARTIFACTS / "imports-preview-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "imports-preview-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)

    page.click("#import-confirm")
    page.wait_for_url(f"{live.url}/imports")
    assert "Imported participants from people.csv: 2 created, 1 updated" in page.inner_text(
        ".notices"
    )
    assert "people.csv" in page.inner_text("#recent-heading + .table-wrap")
    assert _count(live, Participant) == 3
    assert _count(live, PendingImport) == 0
    with live.sessions() as session:
        maria = session.scalars(select(Participant).where(Participant.external_id == "R-100")).one()
        assert maria.phone == "+12025550101" and maria.coach_id is not None
        planned = session.scalar(
            select(func.count())
            .select_from(PlannedContact)
            .where(PlannedContact.participant_id == maria.id, PlannedContact.kind == "welcome")
        )
    assert planned == 1  # her welcome is planned at once
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "imports-done-phone.png"), full_page=True)
