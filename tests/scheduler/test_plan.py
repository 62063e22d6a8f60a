"""Planning in local time: cadence, welcome, reminders, DST, re-plans."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from bot.services.settings import set_setting
from scheduler.plan import plan
from tests.factories import make_appointment, make_participant
from tests.scheduler.helpers import by_occurrence, contacts, local, utc

BEFORE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_cadence_is_planned_at_ten_local_on_the_listed_days_then_weekly_to_day_90(
    session: Session,
) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2), timezone="America/Chicago")
    plan(session, BEFORE)
    planned = by_occurrence(session, p.id)
    days = sorted(int(k.split("-")[1]) for k in planned if k.startswith("day-"))
    assert days == [1, 2, 3, 5, 7, 10, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84]
    for key, contact in planned.items():
        assert local(contact.send_after, "America/Chicago").time().isoformat() == "10:00:00", key
    day5 = planned["day-5"]
    assert local(day5.send_after, "America/Chicago") == datetime(2026, 3, 7, 10, 0)
    assert local(day5.not_after, "America/Chicago") == datetime(2026, 3, 7, 20, 0)
    assert planned["welcome"].send_after == utc("2026-03-02T16:00:00Z")  # 10:00 CST


def test_new_york_spring_forward_keeps_ten_local_and_shifts_utc(session: Session) -> None:
    # DST starts 2026-03-08 in the US: 10:00 EST = 15:00Z before, 10:00 EDT = 14:00Z after.
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    plan(session, BEFORE)
    planned = by_occurrence(session, p.id)
    assert planned["day-5"].send_after == utc("2026-03-07T15:00:00Z")
    assert planned["day-7"].send_after == utc("2026-03-09T14:00:00Z")


def test_new_york_fall_back_keeps_ten_local_and_shifts_utc(session: Session) -> None:
    # DST ends 2026-11-01: 10:00 EDT = 14:00Z before, 10:00 EST = 15:00Z after.
    now = datetime(2026, 10, 25, 12, 0, tzinfo=UTC)
    p = make_participant(session, now, release_date=date(2026, 10, 29))
    plan(session, now)
    planned = by_occurrence(session, p.id)
    assert planned["day-2"].send_after == utc("2026-10-31T14:00:00Z")
    assert planned["day-3"].send_after == utc("2026-11-01T15:00:00Z")


def test_phoenix_has_no_dst_so_utc_is_constant_across_the_us_change(session: Session) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2), timezone="America/Phoenix")
    plan(session, BEFORE)
    planned = by_occurrence(session, p.id)
    assert {c.send_after.time() for k, c in planned.items() if k.startswith("day-")} == {
        datetime(2026, 1, 1, 17, 0).time()
    }


def test_honolulu_is_ten_local_which_is_twenty_utc(session: Session) -> None:
    p = make_participant(
        session, BEFORE, release_date=date(2026, 3, 2), timezone="Pacific/Honolulu"
    )
    plan(session, BEFORE)
    assert by_occurrence(session, p.id)["day-1"].send_after == utc("2026-03-03T20:00:00Z")


def test_import_at_2330_local_on_release_day_welcomes_next_morning_and_day_one_follows(
    session: Session,
) -> None:
    enrolled = datetime(2026, 3, 3, 4, 30, tzinfo=UTC)  # 23:30 EST on 2026-03-02
    p = make_participant(session, enrolled, release_date=date(2026, 3, 2), enrolled_at=enrolled)
    plan(session, enrolled)
    planned = by_occurrence(session, p.id)
    # After the release-day slot, in quiet hours: the next 08:00 local.
    assert local(planned["welcome"].send_after, "America/New_York") == datetime(2026, 3, 3, 8, 0)
    assert local(planned["day-1"].send_after, "America/New_York") == datetime(2026, 3, 3, 10, 0)


def test_imported_after_release_skips_earlier_slots_and_welcomes_at_once(session: Session) -> None:
    enrolled = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # 12:00 EST, day 4 after release
    p = make_participant(session, enrolled, release_date=date(2026, 3, 2), enrolled_at=enrolled)
    plan(session, enrolled)
    planned = by_occurrence(session, p.id)
    assert planned["welcome"].send_after == enrolled
    assert planned["welcome"].not_after == enrolled + timedelta(days=7)
    assert "day-1" not in planned and "day-3" not in planned
    assert "day-5" in planned
    assert contacts(session, p.id, "skipped") == []


def test_a_wall_time_skipped_by_spring_forward_moves_forward(session: Session) -> None:
    set_setting(session, "cadence", {"send_time": "02:30"}, now=BEFORE, user_id=None)
    set_setting(
        session, "quiet_hours", {"start": "23:00", "end": "01:00"}, now=BEFORE, user_id=None
    )
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 1))
    plan(session, BEFORE)
    planned = by_occurrence(session, p.id)
    # Day 7 is 2026-03-08: 02:30 does not exist in New York; it becomes 03:30 EDT (07:30Z).
    assert planned["day-7"].send_after == utc("2026-03-08T07:30:00Z")
    assert local(planned["day-7"].send_after, "America/New_York") == datetime(2026, 3, 8, 3, 30)


def test_zone_change_replans_future_only_and_cancels_the_old_version(session: Session) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    plan(session, BEFORE)
    old = by_occurrence(session, p.id)
    now = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)
    p.timezone = "America/Los_Angeles"
    p.plan_version += 1
    plan(session, now)
    new = by_occurrence(session, p.id)
    assert local(new["day-3"].send_after, "America/Los_Angeles") == datetime(2026, 3, 5, 10, 0)
    # Today's 10:00 PST (18:00Z) is still ahead, so today's check-in moves to it.
    assert new["day-2"].send_after == utc("2026-03-04T18:00:00Z")
    cancelled = contacts(session, p.id, "cancelled")
    assert {c.id for c in cancelled} >= {old["day-2"].id, old["day-3"].id, old["day-5"].id}
    assert all(c.state_reason == "superseded" for c in cancelled)
    assert all(c.version != new["day-3"].version for c in cancelled)


def test_planning_twice_changes_nothing(session: Session) -> None:
    p = make_participant(session, BEFORE)
    first = plan(session, BEFORE)
    second = plan(session, BEFORE + timedelta(hours=1))
    assert first.created > 0
    assert second.created == 0 and second.cancelled == 0 and second.participants == 0
    assert len(contacts(session, p.id)) == first.created


def test_cadence_change_replans_everyone_once(session: Session) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    plan(session, BEFORE)
    set_setting(session, "cadence", {"checkin_days": [1, 4]}, now=BEFORE, user_id=None)
    counts = plan(session, BEFORE)
    assert counts.participants == 1
    assert "day-4" in by_occurrence(session, p.id)
    assert plan(session, BEFORE).participants == 0


def test_reminders_go_three_days_and_one_day_before_at_ten_and_two_hours_before(
    session: Session,
) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    appt = make_appointment(session, p, utc("2026-03-20T18:00:00Z"), BEFORE)  # 14:00 EDT
    plan(session, BEFORE)
    planned = by_occurrence(session, p.id)
    assert local(planned["reminder.3d"].send_after, "America/New_York") == datetime(2026, 3, 17, 10)
    assert local(planned["reminder.1d"].send_after, "America/New_York") == datetime(2026, 3, 19, 10)
    assert planned["reminder.2h"].send_after == utc("2026-03-20T16:00:00Z")
    assert planned["reminder.2h"].not_after == utc("2026-03-20T17:30:00Z")
    assert planned["reminder.2h"].template_key == "reminder.supervision.2h"
    assert planned["reminder.2h"].appointment_id == appt.id


def test_two_hour_reminder_in_quiet_hours_moves_to_evening_before_and_is_dropped_near_another(
    session: Session,
) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    make_appointment(session, p, utc("2026-03-20T13:00:00Z"), BEFORE)  # 09:00 EDT: 2h = 07:00
    plan(session, BEFORE)
    planned = by_occurrence(session, p.id)
    # 07:00 moves to 20:00 the evening before, 10 h after the 1-day reminder: dropped.
    assert "reminder.2h" not in planned
    assert "reminder.1d" in planned


def test_moved_reminder_is_kept_when_nothing_went_out_in_the_twelve_hours_before(
    session: Session,
) -> None:
    set_setting(session, "reminders", {"offsets": ["3d", "2h"]}, now=BEFORE, user_id=None)
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    make_appointment(session, p, utc("2026-03-20T13:00:00Z"), BEFORE)
    plan(session, BEFORE)
    moved = by_occurrence(session, p.id)["reminder.2h"]
    assert local(moved.send_after, "America/New_York") == datetime(2026, 3, 19, 20, 0)


def test_appointment_imported_late_gets_only_the_latest_passed_reminder_at_once(
    session: Session,
) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    plan(session, BEFORE)
    now = utc("2026-03-19T17:00:00Z")  # 13:00 EDT, the day before a 14:00 appointment
    make_appointment(session, p, utc("2026-03-20T18:00:00Z"), now)
    plan(session, now)
    reminders = [c for c in contacts(session, p.id) if c.kind == "reminder"]
    assert [(c.rule, c.send_after) for c in reminders] == [
        ("reminder.1d", now),
        ("reminder.2h", utc("2026-03-20T16:00:00Z")),
    ]


def test_moved_appointment_cancels_old_reminders_and_plans_new_ones(session: Session) -> None:
    p = make_participant(session, BEFORE, release_date=date(2026, 3, 2))
    appt = make_appointment(session, p, utc("2026-03-20T18:00:00Z"), BEFORE)
    plan(session, BEFORE)
    appt.starts_at = utc("2026-03-27T18:00:00Z")
    appt.version += 1
    counts = plan(session, BEFORE)
    assert counts.appointments == 1 and counts.cancelled == 3 and counts.created == 3
    planned = by_occurrence(session, p.id)
    assert local(planned["reminder.1d"].send_after, "America/New_York") == datetime(2026, 3, 26, 10)


def test_opted_out_participant_has_every_planned_contact_cancelled(session: Session) -> None:
    p = make_participant(session, BEFORE)
    plan(session, BEFORE)
    p.status = "opted_out"
    p.plan_version += 1
    plan(session, BEFORE)
    assert contacts(session, p.id, "planned") == []
    assert {c.state_reason for c in contacts(session, p.id, "cancelled")} == {
        "participant_opted_out"
    }
