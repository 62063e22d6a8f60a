"""Re-planning plans from the moment of the change, not from the next tick (DESIGN.md, Precise
rules, Re-planning and Windows): a slot between the change and the tick is sent when its window
is still open when the tick runs, recorded `skipped` when it has closed, and never sent twice.

One person in New York (EST, UTC-5 on these dates), released 2026-03-02, so day 1 is
2026-03-03 and day 2 is 2026-03-04, each at 10:00 local (15:00Z) with a window until 20:00
local (01:00Z the next day). Between the change and the tick no tick runs (a worker that was
down, or simply the next tick after a late evening change)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.models import OutboundMessage, Participant, PlannedContact
from bot.services.consent import opt_in, opt_out
from bot.services.conversation import set_paused, update_details
from bot.services.importer import import_participants
from bot.services.replan import request_replan
from bot.services.settings import get_setting
from bot.services.settings_editing import save_settings
from bot.transport.simulated import SimulatedTransport
from scheduler.plan import clear_replan_marks, plan, plan_participant
from scheduler.slots import load_rules
from scheduler.tick import tick
from tests.factories import make_appointment, make_participant
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY1_TICK = utc("2026-03-03T15:05:00Z")  # 10:05 EST on day 1
DAY2_INSIDE = utc("2026-03-04T15:05:00Z")  # 10:05 EST on day 2: after the slot, in its window
DAY2_CLOSED = utc("2026-03-05T01:30:00Z")  # 20:30 EST on day 2: its window closed at 20:00

INSIDE_OR_CLOSED = pytest.mark.parametrize(
    ("tick_at", "expected"),
    [(DAY2_INSIDE, "sent"), (DAY2_CLOSED, "skipped")],
    ids=["tick_inside_window", "tick_after_window"],
)


def _participant(sessions: sessionmaker[Session], **overrides: Any) -> int:
    with sessions.begin() as session:
        values: dict[str, Any] = {"release_date": date(2026, 3, 2), "enrolled_at": ENROLLED}
        values.update(overrides)
        return make_participant(session, ENROLLED, **values).id


def _tick(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config, at: datetime
) -> None:
    tick(sessions, transport, config, at, rate_limited=False)


def _states(sessions: sessionmaker[Session], pid: int, occurrence: str) -> list[str]:
    """Every planned contact of that occurrence, oldest version first."""
    with sessions() as session:
        return list(
            session.scalars(
                select(PlannedContact.state)
                .where(
                    PlannedContact.participant_id == pid, PlannedContact.occurrence == occurrence
                )
                .order_by(PlannedContact.id)
            )
        )


def _texts(sessions: sessionmaker[Session], pid: int) -> dict[str, int]:
    """Outbound texts made from planned contacts, by occurrence (cancelled outbox rows aside)."""
    with sessions() as session:
        rows = session.execute(
            select(PlannedContact.occurrence, func.count(OutboundMessage.id))
            .join(OutboundMessage, OutboundMessage.planned_contact_id == PlannedContact.id)
            .where(PlannedContact.participant_id == pid, OutboundMessage.status != "cancelled")
            .group_by(PlannedContact.occurrence)
        )
        return {occurrence: count for occurrence, count in rows}


def _skipped_reasons(sessions: sessionmaker[Session], pid: int, occurrence: str) -> set[str | None]:
    with sessions() as session:
        return set(
            session.scalars(
                select(PlannedContact.state_reason).where(
                    PlannedContact.participant_id == pid,
                    PlannedContact.occurrence == occurrence,
                    PlannedContact.state == "skipped",
                )
            )
        )


def _assert_day2(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    pid: int,
    expected: str,
    sent_before: int,
) -> None:
    """Day 2 sent exactly once inside its window; after it, recorded skipped and not sent."""
    texts = _texts(sessions, pid)
    assert _states(sessions, pid, "day-2")[-1] == expected
    if expected == "sent":
        assert texts.get("day-2") == 1
        assert len(transport.sent) == sent_before + 1
    else:
        assert "day-2" not in texts
        assert len(transport.sent) == sent_before
        assert _skipped_reasons(sessions, pid, "day-2") == {"window_closed"}
    # The rest of the programme is planned as usual.
    assert _states(sessions, pid, "day-3")[-1] == "planned"


def _import(session: Session, at: datetime, **row: str) -> None:
    values = {
        "external_id": "P-REPLAN",
        "first_name": "Sam",
        "phone": "+13125550199",
        "release_date": "2026-03-02",
        "timezone": "America/New_York",
    }
    values.update(row)
    text = ",".join(values) + "\n" + ",".join(values.values()) + "\n"
    import_participants(
        session, io.StringIO(text), now=at, default_timezone="America/New_York", recorded_by="test"
    )


def _imported_id(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        pid = session.scalar(select(Participant.id).where(Participant.external_id == "P-REPLAN"))
        assert pid is not None
        return pid


# --- STOP then START -----------------------------------------------------------------------


@INSIDE_OR_CLOSED
def test_after_stop_then_start_the_next_checkin_is_sent_in_its_window_or_recorded_skipped(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
    tick_at: datetime,
    expected: str,
) -> None:
    pid = _participant(sessions)
    _tick(sessions, transport, config, DAY1_TICK)  # welcome and day 1
    stop_at = utc("2026-03-03T17:00:00Z")  # 12:00 EST on day 1
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        opt_out(session, person, now=stop_at, method="sms_keyword", wording="STOP")
    _tick(sessions, transport, config, stop_at + timedelta(minutes=1))
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        start_at = utc("2026-03-03T23:00:00Z")  # 18:00 EST on day 1
        assert opt_in(session, person, now=start_at, method="sms_keyword", wording="START")
    sent_before = len(transport.sent)

    _tick(sessions, transport, config, tick_at)

    assert _states(sessions, pid, "day-2")[0] == "cancelled"  # by the STOP
    _assert_day2(sessions, transport, pid, expected, sent_before)


def test_stop_and_start_after_a_checkin_went_do_not_send_it_again(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    _tick(sessions, transport, config, DAY1_TICK)  # welcome and day 1 go at 10:05 on day 1
    assert _texts(sessions, pid) == {"welcome": 1, "day-1": 1}
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        opt_out(session, person, now=utc("2026-03-04T14:00:00Z"), method="sms_keyword", wording="")
        opt_in(session, person, now=utc("2026-03-04T14:30:00Z"), method="sms_keyword", wording="")

    _tick(sessions, transport, config, DAY2_INSIDE)
    _tick(sessions, transport, config, DAY2_INSIDE + timedelta(minutes=1))

    assert _texts(sessions, pid) == {"welcome": 1, "day-1": 1, "day-2": 1}
    assert len(transport.sent) == 3


def test_a_release_date_moved_later_does_not_send_an_occurrence_that_already_went(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    with sessions.begin() as session:
        _import(session, ENROLLED)
    pid = _imported_id(sessions)
    _tick(sessions, transport, config, DAY1_TICK)  # welcome and day 1 (2026-03-03)
    with sessions.begin() as session:
        # Released a day later after all: the new day 1 (2026-03-04 10:00) is after the change.
        _import(session, utc("2026-03-03T23:00:00Z"), release_date="2026-03-03")

    _tick(sessions, transport, config, DAY2_INSIDE)

    assert _texts(sessions, pid) == {"welcome": 1, "day-1": 1}
    assert _states(sessions, pid, "day-2")[-1] == "planned"  # now 2026-03-05


# --- pause then resume -----------------------------------------------------------------------


@INSIDE_OR_CLOSED
def test_after_pause_then_resume_the_next_checkin_is_sent_in_its_window_or_recorded_skipped(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
    tick_at: datetime,
    expected: str,
) -> None:
    pid = _participant(sessions)
    _tick(sessions, transport, config, DAY1_TICK)
    pause_at = utc("2026-03-03T17:00:00Z")
    with sessions.begin() as session:
        assert set_paused(session.get_one(Participant, pid), True, pause_at)
    _tick(sessions, transport, config, pause_at + timedelta(minutes=1))
    assert _states(sessions, pid, "day-2") == ["cancelled"]
    with sessions.begin() as session:
        assert set_paused(session.get_one(Participant, pid), False, utc("2026-03-03T23:00:00Z"))
    sent_before = len(transport.sent)

    _tick(sessions, transport, config, tick_at)

    _assert_day2(sessions, transport, pid, expected, sent_before)


def test_a_resume_sends_nothing_that_fell_during_the_pause(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    _tick(sessions, transport, config, DAY1_TICK)
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        # A zone edit at 09:00, a pause at 09:30, a resume at 10:30; no tick in between.
        update_details(
            session,
            person,
            phone=person.phone,
            timezone="America/New_York",
            language="es",
            now=utc("2026-03-04T14:00:00Z"),
        )
        set_paused(person, True, utc("2026-03-04T14:30:00Z"))
        set_paused(person, False, utc("2026-03-04T15:30:00Z"))

    _tick(sessions, transport, config, utc("2026-03-04T15:35:00Z"))

    # Day 2 (10:00) fell during the pause: not sent, not planned again.
    assert "day-2" not in _texts(sessions, pid)
    assert "planned" not in _states(sessions, pid, "day-2")
    assert _states(sessions, pid, "day-3")[-1] == "planned"


# --- release date, zone, cadence ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick_at", "expected"),
    [(utc("2026-03-04T15:05:00Z"), "sent"), (utc("2026-03-05T01:30:00Z"), "skipped")],
    ids=["tick_inside_window", "tick_after_window"],
)
def test_after_a_release_date_change_by_reimport_the_checkin_is_sent_in_its_window_or_skipped(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
    tick_at: datetime,
    expected: str,
) -> None:
    with sessions.begin() as session:
        _import(session, ENROLLED, release_date="2026-03-20")
    pid = _imported_id(sessions)
    _tick(sessions, transport, config, ENROLLED + timedelta(minutes=1))  # planned for the 20th
    with sessions.begin() as session:
        # Re-imported on the evening of 2026-03-03, released on the 2nd after all.
        _import(session, utc("2026-03-03T23:00:00Z"))
    sent_before = len(transport.sent)

    _tick(sessions, transport, config, tick_at)

    # Day 1 (10:00 on the 3rd) was before the change: not planned.
    assert "day-1" not in _texts(sessions, pid)
    assert "skipped" not in _states(sessions, pid, "day-1")
    # The welcome's window (7 days from the release-day slot) is still open: it goes first.
    assert _texts(sessions, pid).get("welcome") == 1
    _assert_day2(sessions, transport, pid, expected, sent_before + 1)


@INSIDE_OR_CLOSED
def test_after_a_zone_change_the_checkin_is_sent_in_its_window_or_recorded_skipped(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
    tick_at: datetime,
    expected: str,
) -> None:
    # Planned in Los Angeles (day 2 at 10:00 PST = 18:00Z), then moved to New York at 09:00
    # EST on day 2: the new day-2 slot (15:00Z) is after the change.
    pid = _participant(sessions, timezone="America/Los_Angeles")
    _tick(sessions, transport, config, utc("2026-03-03T19:05:00Z"))  # welcome, day 1 (PST)
    assert _texts(sessions, pid) == {"welcome": 1, "day-1": 1}
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        changes = update_details(
            session,
            person,
            phone=person.phone,
            timezone="America/New_York",
            language="en",
            now=utc("2026-03-04T14:00:00Z"),
        )
        assert "timezone" in changes
    sent_before = len(transport.sent)

    _tick(sessions, transport, config, tick_at)

    assert _states(sessions, pid, "day-2")[0] == "cancelled"  # the Los Angeles slot
    _assert_day2(sessions, transport, pid, expected, sent_before)


@INSIDE_OR_CLOSED
def test_after_a_cadence_change_the_checkin_is_sent_in_its_window_or_recorded_skipped(
    sessions: sessionmaker[Session],
    transport: SimulatedTransport,
    config: Config,
    tick_at: datetime,
    expected: str,
) -> None:
    pid = _participant(sessions)
    _tick(sessions, transport, config, DAY1_TICK)
    with sessions.begin() as session:
        cadence = {**get_setting(session, "cadence"), "checkin_days": [1, 2, 3, 6]}
        save_settings(
            session,
            {"cadence": cadence},
            user_id=None,
            now=utc("2026-03-04T13:30:00Z"),  # 08:30 EST on day 2
            planner=None,  # planned by the next tick, not at once
        )
    sent_before = len(transport.sent)

    _tick(sessions, transport, config, tick_at)

    _assert_day2(sessions, transport, pid, expected, sent_before)
    assert _states(sessions, pid, "day-5")[-1] == "cancelled"  # no longer in the cadence
    assert _states(sessions, pid, "day-6") == ["planned"]


# --- the function other changes call ------------------------------------------------------------


def test_request_replan_by_id_plans_from_the_change_and_only_once(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    _tick(sessions, transport, config, DAY1_TICK)
    with sessions.begin() as session:
        request_replan(session, pid, utc("2026-03-04T14:00:00Z"))

    _tick(sessions, transport, config, DAY2_INSIDE)
    _tick(sessions, transport, config, DAY2_INSIDE + timedelta(minutes=5))

    assert _texts(sessions, pid) == {"welcome": 1, "day-1": 1, "day-2": 1}
    with sessions() as session:
        person = session.get_one(Participant, pid)
        assert person.replan_from is None  # cleared once planned
        assert person.planned_version == person.plan_version


def test_request_replan_of_an_unknown_id_raises(session: Session) -> None:
    with pytest.raises(LookupError):
        request_replan(session, 999_999, ENROLLED)


@pytest.mark.postgres_only
def test_a_change_made_while_the_planner_works_keeps_its_moment_for_the_next_tick(
    sessions: sessionmaker[Session],
) -> None:
    pid = _participant(sessions)
    first, second = utc("2026-03-04T14:00:00Z"), utc("2026-03-04T14:02:00Z")
    with sessions.begin() as session:
        request_replan(session, pid, first)
    with sessions() as planner:
        person = planner.get_one(Participant, pid)  # read by the planner...
        with sessions.begin() as other:  # ...then a resume is committed...
            request_replan(other, pid, second, restart=True)
        # ...before the planner writes what it planned.
        plan_participant(planner, person, load_rules(planner), first + timedelta(minutes=1))
        clear_replan_marks(planner, [pid])
        planner.commit()
    with sessions() as session:
        person = session.get_one(Participant, pid)
        assert person.replan_from == second
        assert person.planned_version != person.plan_version  # the next tick plans again


def test_a_replan_never_plans_checkins_before_the_enrolment(session: Session) -> None:
    # Imported at 12:00 EST on day 2 (after the day-1 and day-2 slots), planned, then a change
    # whose moment is earlier than the import (a clock behind the importer's).
    enrolled = utc("2026-03-04T17:00:00Z")
    person = make_participant(
        session, enrolled, release_date=date(2026, 3, 2), enrolled_at=enrolled
    )
    plan(session, enrolled)
    request_replan(session, person, utc("2026-03-03T12:00:00Z"))
    plan(session, enrolled + timedelta(hours=1))

    occurrences = {
        c.occurrence
        for c in session.scalars(
            select(PlannedContact).where(PlannedContact.participant_id == person.id)
        )
    }
    assert "day-1" not in occurrences and "day-2" not in occurrences
    assert {"welcome", "day-3"} <= occurrences


def test_after_stop_then_start_a_reminder_due_before_the_tick_is_sent(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _participant(sessions)
    with sessions.begin() as session:
        # 14:00 EST on 2026-03-05: reminders at 10:00 on the 2nd and the 4th, 12:00 on the 5th.
        person = session.get_one(Participant, pid)
        make_appointment(session, person, utc("2026-03-05T19:00:00Z"), ENROLLED)
    _tick(sessions, transport, config, ENROLLED + timedelta(minutes=1))
    _tick(sessions, transport, config, utc("2026-03-02T15:05:00Z"))  # welcome, 3-day reminder
    with sessions.begin() as session:
        person = session.get_one(Participant, pid)
        opt_out(session, person, now=utc("2026-03-03T17:00:00Z"), method="sms", wording="")
        opt_in(session, person, now=utc("2026-03-03T23:00:00Z"), method="sms", wording="")

    _tick(sessions, transport, config, DAY2_INSIDE)  # 10:05 EST on the 4th

    with sessions() as session:
        reminders = session.execute(
            select(PlannedContact.rule, func.count(OutboundMessage.id))
            .join(OutboundMessage, OutboundMessage.planned_contact_id == PlannedContact.id)
            .where(PlannedContact.participant_id == pid, PlannedContact.kind == "reminder")
            .group_by(PlannedContact.rule)
        )
        assert {rule: n for rule, n in reminders} == {"reminder.3d": 1, "reminder.1d": 1}
    assert _texts(sessions, pid)["day-2"] == 1
