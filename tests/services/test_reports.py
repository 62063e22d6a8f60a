"""Reports: weekly sent/delivered/replied, reply rate by days since release, flags by reason,
median time to acknowledge urgent and high flags; the CSV carries the same numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.models import InboundMessage, OutboundMessage, Participant
from bot.services.flags import acknowledge_flag, raise_flag, resolve_flag
from bot.services.reports import build_report, day_bucket, report_csv, report_period, week_start
from bot.web.charts import Series, bar_chart
from tests.factories import make_participant, make_user

ZONE = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 20, 16, 0, tzinfo=UTC)  # a Friday


def _sent(
    session: Session,
    person: Participant,
    at: datetime,
    purpose: str = "checkin",
    status: str = "delivered",
) -> None:
    session.add(
        OutboundMessage(
            idempotency_key=f"t:{person.id}:{at.isoformat()}:{purpose}",
            participant_id=person.id,
            purpose=purpose,
            channel="sms",
            to_address=person.phone,
            body="hello",
            segments=1,
            status=status,
            attempts=1,
            send_after=at,
            created_at=at,
            sent_at=at,
        )
    )


def _reply(session: Session, person: Participant, at: datetime) -> None:
    session.add(
        InboundMessage(
            message_sid=f"SM{person.id}{int(at.timestamp())}",
            from_address=person.phone,
            to_address="+12025550100",
            channel="sms",
            body="ok",
            num_media=0,
            raw_form={},
            participant_id=person.id,
            received_at=at,
            processing_state="processed",
        )
    )


def test_weeks_count_sent_delivered_and_replied_within_the_window(session: Session) -> None:
    person = make_participant(session, NOW, release_date=date(2026, 3, 1))
    monday = datetime(2026, 3, 16, 14, 0, tzinfo=UTC)
    _sent(session, person, monday)  # replied 3 h later
    _reply(session, person, monday + timedelta(hours=3))
    _sent(session, person, monday + timedelta(days=2), status="undelivered")
    _sent(session, person, datetime(2026, 3, 10, 14, 0, tzinfo=UTC), purpose="reminder")
    # A reply 3 days later is outside the 48 h window: not counted for the week before.
    _reply(session, person, datetime(2026, 3, 13, 15, 0, tzinfo=UTC))
    # Replies to coaches are not scheduled contacts.
    _sent(session, person, monday + timedelta(hours=4), purpose="coach_reply")
    session.flush()
    start, end = report_period(NOW, ZONE, weeks=3)

    report = build_report(session, start=start, end=end, zone=ZONE)

    assert [(w.label, w.sent, w.delivered, w.replied) for w in report.weeks] == [
        ("2026-03-02", 0, 0, 0),
        ("2026-03-09", 1, 1, 0),
        ("2026-03-16", 2, 1, 1),
    ]


def test_reply_rate_is_bucketed_by_local_days_since_release(session: Session) -> None:
    released = date(2026, 3, 1)
    first = make_participant(session, NOW, release_date=released, timezone="America/Los_Angeles")
    second = make_participant(session, NOW, release_date=released)
    # 06:00 UTC on 3 March is still 2 March in Los Angeles: day 1 for them, day 2 in New York.
    at = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    _sent(session, first, at)
    _reply(session, first, at + timedelta(minutes=5))
    _sent(session, second, at)
    _sent(session, second, datetime(2026, 3, 19, 14, 0, tzinfo=UTC))  # day 18 → days 15–21
    _reply(session, second, datetime(2026, 3, 19, 18, 0, tzinfo=UTC))
    session.flush()

    report = build_report(session, start=datetime(2026, 3, 2, tzinfo=UTC), end=NOW, zone=ZONE)

    rows = [(r.label, r.sent, r.replied, r.rate) for r in report.reply_rates]
    assert rows == [("day 1", 1, 1, 1.0), ("day 2", 1, 0, 0.0), ("days 15–21", 1, 1, 1.0)]


def test_flags_by_reason_and_median_time_to_acknowledge(session: Session) -> None:
    coach = make_user(session, NOW)
    people = [make_participant(session, NOW) for _ in range(4)]
    opened = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
    minutes = (4, 10, 30)
    for person, delay in zip(people, minutes, strict=False):
        flag = raise_flag(
            session, reason="crisis", severity="urgent", now=opened, participant_id=person.id
        ).flag
        acknowledge_flag(session, flag, user_id=coach.id, now=opened + timedelta(minutes=delay))
    # A high flag resolved by a coach without an acknowledgement first: 60 minutes.
    high = raise_flag(
        session, reason="delivery_failed", severity="high", now=opened, participant_id=people[3].id
    ).flag
    resolve_flag(
        session,
        high,
        outcome="reached",
        note=None,
        now=opened + timedelta(minutes=60),
        user_id=coach.id,
    )
    # Resolved automatically (a reply): opened and resolved, but no human acknowledgement.
    auto = raise_flag(
        session, reason="no_reply", severity="high", now=opened, participant_id=people[0].id
    ).flag
    resolve_flag(
        session,
        auto,
        outcome="reached",
        note=None,
        now=opened + timedelta(hours=1),
        user_id=None,
        automatic=True,
    )
    # Opened before the period: counts only as resolved in it.
    old = raise_flag(
        session,
        reason="unconfirmed_appointment",
        severity="normal",
        now=datetime(2026, 1, 5, tzinfo=UTC),
        participant_id=people[1].id,
    ).flag
    resolve_flag(session, old, outcome="rescheduled", note=None, now=opened, user_id=coach.id)
    session.flush()

    report = build_report(session, start=datetime(2026, 3, 2, tzinfo=UTC), end=NOW, zone=ZONE)

    assert [(f.reason, f.opened, f.resolved) for f in report.flags] == [
        ("no_reply", 1, 1),
        ("unconfirmed_appointment", 0, 1),
        ("delivery_failed", 1, 1),
        ("crisis", 3, 0),
    ]
    ack = {row.severity: row for row in report.acknowledgement}
    assert (ack["urgent"].flags, ack["urgent"].acknowledged, ack["urgent"].median_minutes) == (
        3,
        3,
        10,
    )
    assert (ack["high"].flags, ack["high"].acknowledged, ack["high"].median_minutes) == (2, 1, 60)


def test_the_csv_has_one_row_per_number(session: Session) -> None:
    person = make_participant(session, NOW, release_date=date(2026, 3, 15))
    _sent(session, person, datetime(2026, 3, 16, 14, 0, tzinfo=UTC))
    _reply(session, person, datetime(2026, 3, 16, 15, 0, tzinfo=UTC))
    session.flush()
    start, end = report_period(NOW, ZONE, weeks=1)
    report = build_report(session, start=start, end=end, zone=ZONE)

    rows = list(csv.reader(io.StringIO(report_csv(report))))

    assert rows[0] == ["section", "label", "measure", "value"]
    assert ["week", "2026-03-16", "replied", "1"] in rows
    assert ["days_since_release", "day 1", "reply_rate", "1.000"] in rows
    assert ["acknowledgement", "urgent", "median_minutes", ""] in rows


def test_week_start_and_day_buckets() -> None:
    # Sunday 23:30 in New York is 04:30 UTC Monday: still the week of the previous Monday.
    assert week_start(datetime(2026, 3, 16, 3, 30, tzinfo=UTC), ZONE) == date(2026, 3, 9)
    assert day_bucket(14) == (14, "day 14")
    assert day_bucket(15) == (15, "days 15–21")
    assert day_bucket(22) == (22, "days 22–28")


def test_charts_are_svg_with_escaped_text_and_a_description() -> None:
    svg = bar_chart(
        "c1",
        "Sent <per> week",
        ["w1", "w2"],
        [Series("sent", [3, 5]), Series("replied", [1, None])],
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Sent &lt;per&gt; week" in svg and "<script" not in svg and "style=" not in svg
    assert "w1: sent 3, replied 1; w2: sent 5, replied none" in svg
    empty = bar_chart("c2", "Nothing", [], [Series("sent", [])])
    assert "No data in this period yet" in empty
