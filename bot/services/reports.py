"""Reports for coordinators: how the program is reaching people, and how fast flags get a human.

Plain SQL for the rows, Python for the arithmetic (week buckets in the program's zone, medians,
"did a reply come within the window"), so the same code runs on SQLite and PostgreSQL without
dialect-specific date functions. Every query is bounded by the report's period.

- Weekly activity: scheduled contacts (welcome, check-in, reminder) sent in the week, how many of
  them were delivered, and how many got a reply from the participant within the reply window.
- Reply rate by days since release: check-ins only, bucketed by the participant's local day number
  (single days to day 14, then weeks), so a coordinator can see where people drop off.
- Flags by reason: opened and resolved in the period.
- Time to acknowledge urgent and high flags: the median minutes from opening to the first human
  action (acknowledged, or resolved by a person without an acknowledgement first).
"""

from __future__ import annotations

import bisect
import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.models import Flag, InboundMessage, OutboundMessage, Participant
from bot.models.flags import REASONS
from bot.services.csv_export import SafeWriter
from bot.services.settings import get_setting
from bot.timeutil import local_datetime

SCHEDULED_PURPOSES = ("welcome", "checkin", "reminder")
# Statuses meaning the message left us (Twilio accepted it, or later).
SENT_STATUSES = ("queued", "sent", "delivered", "undelivered", "failed", "unknown")
ACK_SEVERITIES = ("urgent", "high")
DEFAULT_WEEKS = 12


@dataclass(frozen=True)
class WeekRow:
    week_start: date
    sent: int
    delivered: int
    replied: int

    @property
    def label(self) -> str:
        return self.week_start.isoformat()


@dataclass(frozen=True)
class ReplyRateRow:
    label: str
    first_day: int
    sent: int
    replied: int

    @property
    def rate(self) -> float | None:
        return self.replied / self.sent if self.sent else None


@dataclass(frozen=True)
class FlagReasonRow:
    reason: str
    opened: int
    resolved: int


@dataclass(frozen=True)
class AckRow:
    severity: str
    flags: int
    acknowledged: int
    median_minutes: float | None


@dataclass
class Report:
    start: datetime
    end: datetime
    zone: str
    reply_window_hours: int
    weeks: list[WeekRow] = field(default_factory=list)
    reply_rates: list[ReplyRateRow] = field(default_factory=list)
    flags: list[FlagReasonRow] = field(default_factory=list)
    acknowledgement: list[AckRow] = field(default_factory=list)


def week_start(instant: datetime, zone: ZoneInfo) -> date:
    """The Monday (local) of the week `instant` falls in."""
    local = instant.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def day_bucket(day: int) -> tuple[int, str]:
    """Days 0..14 one by one (the dense start of the cadence), then whole weeks."""
    if day <= 14:
        return day, f"day {day}"
    first = 15 + ((day - 15) // 7) * 7
    return first, f"days {first}–{first + 6}"


def report_period(
    now: datetime, zone: ZoneInfo, weeks: int = DEFAULT_WEEKS
) -> tuple[datetime, datetime]:
    """The last `weeks` whole local weeks, the current one included: [Monday 00:00, now]."""
    first_monday = week_start(now, zone) - timedelta(weeks=weeks - 1)
    return local_datetime(first_monday, datetime.min.time(), zone), now


def _replies_by_participant(
    session: Session, start: datetime, end: datetime
) -> dict[int, list[datetime]]:
    rows = session.execute(
        select(InboundMessage.participant_id, InboundMessage.received_at)
        .where(
            InboundMessage.participant_id.is_not(None),
            InboundMessage.received_at >= start,
            InboundMessage.received_at < end,
        )
        .order_by(InboundMessage.received_at)
    )
    replies: dict[int, list[datetime]] = defaultdict(list)
    for participant_id, received_at in rows:
        if participant_id is not None:
            replies[participant_id].append(received_at)
    return replies


def _replied(replies: list[datetime], sent_at: datetime, window: timedelta) -> bool:
    i = bisect.bisect_right(replies, sent_at)
    return i < len(replies) and replies[i] <= sent_at + window


def build_report(session: Session, *, start: datetime, end: datetime, zone: ZoneInfo) -> Report:
    window_hours = int(get_setting(session, "escalation")["reply_window_hours"])
    window = timedelta(hours=window_hours)
    report = Report(start=start, end=end, zone=str(zone), reply_window_hours=window_hours)
    replies = _replies_by_participant(session, start, end + window)

    sent_rows = session.execute(
        select(
            OutboundMessage.participant_id,
            OutboundMessage.purpose,
            OutboundMessage.status,
            OutboundMessage.sent_at,
            Participant.release_date,
            Participant.timezone,
        )
        .join(Participant, Participant.id == OutboundMessage.participant_id)
        .where(
            OutboundMessage.purpose.in_(SCHEDULED_PURPOSES),
            OutboundMessage.status.in_(SENT_STATUSES),
            OutboundMessage.sent_at >= start,
            OutboundMessage.sent_at < end,
        )
    )
    weeks: dict[date, list[int]] = {}
    monday = week_start(start, zone)
    while monday <= week_start(end, zone):
        weeks[monday] = [0, 0, 0]
        monday += timedelta(weeks=1)
    by_day: dict[tuple[int, str], list[int]] = {}
    for participant_id, purpose, status, sent_at, release_date, timezone in sent_rows:
        if participant_id is None or sent_at is None:
            continue
        replied = _replied(replies.get(participant_id, []), sent_at, window)
        counts = weeks.setdefault(week_start(sent_at, zone), [0, 0, 0])
        counts[0] += 1
        counts[1] += status == "delivered"
        counts[2] += replied
        if purpose == "checkin":
            local_day = sent_at.astimezone(ZoneInfo(timezone)).date()
            bucket = day_bucket(max((local_day - release_date).days, 0))
            pair = by_day.setdefault(bucket, [0, 0])
            pair[0] += 1
            pair[1] += replied
    report.weeks = [WeekRow(day, *counts) for day, counts in sorted(weeks.items())]
    report.reply_rates = [
        ReplyRateRow(label=label, first_day=first, sent=pair[0], replied=pair[1])
        for (first, label), pair in sorted(by_day.items())
    ]

    opened: dict[str, int] = defaultdict(int)
    resolved: dict[str, int] = defaultdict(int)
    ack_minutes: dict[str, list[float]] = {severity: [] for severity in ACK_SEVERITIES}
    ack_total: dict[str, int] = defaultdict(int)
    flag_rows = session.execute(
        select(
            Flag.reason,
            Flag.severity,
            Flag.opened_at,
            Flag.acknowledged_at,
            Flag.resolved_at,
            Flag.resolved_by_id,
        ).where(
            or_(
                Flag.opened_at.between(start, end),
                Flag.resolved_at.between(start, end),
            )
        )
    )
    for reason, severity, opened_at, acknowledged_at, resolved_at, resolved_by_id in flag_rows:
        in_period = start <= opened_at <= end
        if in_period:
            opened[reason] += 1
        if resolved_at is not None and start <= resolved_at <= end:
            resolved[reason] += 1
        if in_period and severity in ACK_SEVERITIES:
            ack_total[severity] += 1
            # An automatic resolution (a reply closing no_reply) is not a person responding.
            human = acknowledged_at or (resolved_at if resolved_by_id is not None else None)
            if human is not None:
                ack_minutes[severity].append((human - opened_at).total_seconds() / 60)
    report.flags = [
        FlagReasonRow(reason, opened[reason], resolved[reason])
        for reason in REASONS
        if opened[reason] or resolved[reason]
    ]
    report.acknowledgement = [
        AckRow(
            severity=severity,
            flags=ack_total[severity],
            acknowledged=len(ack_minutes[severity]),
            median_minutes=statistics.median(ack_minutes[severity])
            if ack_minutes[severity]
            else None,
        )
        for severity in ACK_SEVERITIES
    ]
    return report


def report_csv(report: Report) -> str:
    """One tidy table (section, label, measure, value) that opens cleanly in any spreadsheet."""
    out = io.StringIO()
    writer = SafeWriter(out, lineterminator="\n")
    writer.writerow(["section", "label", "measure", "value"])
    for week in report.weeks:
        for measure, value in (
            ("sent", week.sent),
            ("delivered", week.delivered),
            ("replied", week.replied),
        ):
            writer.writerow(["week", week.label, measure, value])
    for row in report.reply_rates:
        writer.writerow(["days_since_release", row.label, "checkins_sent", row.sent])
        writer.writerow(["days_since_release", row.label, "replied", row.replied])
        rate = "" if row.rate is None else f"{row.rate:.3f}"
        writer.writerow(["days_since_release", row.label, "reply_rate", rate])
    for flag in report.flags:
        writer.writerow(["flags", flag.reason, "opened", flag.opened])
        writer.writerow(["flags", flag.reason, "resolved", flag.resolved])
    for ack in report.acknowledgement:
        writer.writerow(["acknowledgement", ack.severity, "flags", ack.flags])
        writer.writerow(["acknowledgement", ack.severity, "acknowledged", ack.acknowledged])
        median = "" if ack.median_minutes is None else f"{ack.median_minutes:.1f}"
        writer.writerow(["acknowledgement", ack.severity, "median_minutes", median])
    return out.getvalue()
