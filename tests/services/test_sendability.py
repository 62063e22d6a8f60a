"""bot.services.sendability.decide: each rule of its table, directly, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.services.sendability import (
    APPOINTMENT_CANCELLED,
    CRISIS_RECHECK,
    LATER_REMINDER_DUE,
    SEND,
    SUPERSEDED,
    QuietHours,
    Verdict,
    decide,
    hold_for,
)

NEW_YORK = ZoneInfo("America/New_York")
QUIET = QuietHours(time(21, 0), time(8, 0))
DAY = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York
NIGHT = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)  # 22:00 in New York
MORNING = datetime(2026, 3, 4, 13, 0, tzinfo=UTC)  # 08:00 in New York


def _decide(now: datetime = DAY, **overrides: object) -> Verdict:
    values: dict[str, object] = {
        "status": "active",
        "purpose": "checkin",
        "not_after": now + timedelta(hours=4),
        "zone": NEW_YORK,
        "quiet": QUIET,
    }
    values.update(overrides)
    return decide(now, **values)  # type: ignore[arg-type]


def test_an_active_person_in_the_day_within_the_window_is_sent_to() -> None:
    assert _decide() is SEND
    assert _decide(status=None, not_after=None) is SEND  # staff, no deadline


@pytest.mark.parametrize("purpose", ["checkin", "crisis_reply", "page"])
def test_an_opted_out_person_is_never_texted_whatever_the_purpose(purpose: str) -> None:
    assert _decide(status="opted_out", purpose=purpose) == Verdict(
        "cancelled", "participant_opted_out"
    )


@pytest.mark.parametrize("status", ["paused", "closed"])
def test_a_paused_or_closed_person_gets_only_crisis_replies(status: str) -> None:
    assert _decide(status=status) == Verdict("cancelled", f"participant_{status}")
    assert _decide(status=status, purpose="crisis_reply") is SEND


def test_a_passed_deadline_skips_the_message_never_sends_it_late() -> None:
    assert _decide(not_after=DAY) == Verdict("skipped", "window_closed")
    assert _decide(not_after=DAY - timedelta(minutes=1)) == Verdict("skipped", "window_closed")


def test_the_recipients_status_decides_before_the_deadline() -> None:
    assert _decide(status="opted_out", not_after=DAY).action == "cancelled"


def test_the_callers_own_verdict_comes_after_status_and_deadline() -> None:
    assert _decide(withdrawn=SUPERSEDED) == Verdict("cancelled", "superseded")
    assert _decide(withdrawn=APPOINTMENT_CANCELLED) == Verdict("cancelled", "appointment_cancelled")
    assert _decide(withdrawn=LATER_REMINDER_DUE) == Verdict("skipped", "later_reminder_due")
    assert _decide(withdrawn=SUPERSEDED, not_after=DAY) == Verdict("skipped", "window_closed")
    assert _decide(withdrawn=SUPERSEDED, status="paused").reason == "participant_paused"


def test_an_inactive_staff_recipient_is_not_texted() -> None:
    assert _decide(status=None, user_active=False) == Verdict("cancelled", "user_inactive")


def test_quiet_hours_defer_to_the_morning_when_the_window_is_still_open_then() -> None:
    verdict = _decide(NIGHT, not_after=NIGHT + timedelta(days=7))
    assert verdict == Verdict("deferred", "quiet_hours", MORNING)


def test_quiet_hours_that_outlast_the_window_skip_the_message() -> None:
    assert _decide(NIGHT, not_after=MORNING) == Verdict("skipped", "window_closed")
    assert _decide(NIGHT, not_after=NIGHT + timedelta(hours=1)).action == "skipped"


def test_quiet_hours_are_the_recipients_local_time() -> None:
    # 22:00 in New York is 19:00 in Los Angeles: not quiet there.
    assert _decide(NIGHT, zone=ZoneInfo("America/Los_Angeles")) is SEND


def test_what_answers_a_person_ignores_quiet_hours_but_not_the_rest() -> None:
    assert _decide(NIGHT, ignore_quiet_hours=True) is SEND
    assert _decide(NIGHT, ignore_quiet_hours=True, status="opted_out").action == "cancelled"
    assert _decide(NIGHT, ignore_quiet_hours=True, not_after=NIGHT).action == "skipped"


def test_the_quiet_hours_answer_follows_the_instant_asked_about() -> None:
    quiet = QuietHours(time(21, 0), time(8, 0))
    assert quiet.is_quiet(NIGHT, NEW_YORK)
    assert not quiet.is_quiet(DAY, NEW_YORK)  # not the answer kept for NIGHT
    assert quiet.is_quiet(NIGHT, NEW_YORK)


@pytest.mark.parametrize("purpose", ["welcome", "checkin"])
def test_an_open_crisis_holds_automated_outreach_and_looks_again_soon(purpose: str) -> None:
    hold = hold_for(purpose, now=DAY, paused_until=None, crisis_open=True)
    assert _decide(purpose=purpose, hold=hold) == Verdict(
        "deferred", "crisis_open", DAY + CRISIS_RECHECK
    )


@pytest.mark.parametrize("purpose", ["reminder", "crisis_reply", "page", "reply"])
def test_neither_a_crisis_nor_a_pause_holds_reminders_replies_or_pages(purpose: str) -> None:
    assert (
        hold_for(purpose, now=DAY, paused_until=DAY + timedelta(days=7), crisis_open=True) is None
    )


def test_a_pause_holds_a_check_in_until_it_ends_and_then_no_longer() -> None:
    until = DAY + timedelta(days=2)
    hold = hold_for("checkin", now=DAY, paused_until=until, crisis_open=False)
    assert _decide(hold=hold, not_after=DAY + timedelta(days=3)) == Verdict(
        "deferred", "checkins_paused", until
    )
    assert hold_for("checkin", now=until, paused_until=until, crisis_open=False) is None


def test_a_hold_that_outlasts_the_window_skips_the_message_with_the_holds_reason() -> None:
    hold = hold_for("checkin", now=DAY, paused_until=DAY + timedelta(days=7), crisis_open=False)
    assert _decide(hold=hold) == Verdict("skipped", "checkins_paused")
    crisis = hold_for("checkin", now=DAY, paused_until=None, crisis_open=True)
    assert _decide(hold=crisis, not_after=DAY + timedelta(minutes=1)) == Verdict(
        "skipped", "crisis_open"
    )
