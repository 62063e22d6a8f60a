"""Local wall time <-> UTC, with the DST rules of DESIGN.md §1: a wall time skipped by a
spring-forward moves forward by the gap; a repeated one (fall back) takes the first."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Convert a naive local wall time in `zone` to an aware UTC instant."""
    if wall.tzinfo is not None:
        return wall.astimezone(UTC)
    # fold=0 picks the first of a repeated wall time (fall back). For a wall time inside a
    # spring-forward gap, fold=0 uses the offset from before the transition, which lands after
    # the gap in UTC: 02:30 on spring-forward day in New York becomes 03:30 EDT, i.e. the
    # time moves forward by the gap.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def local_datetime(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of `at` on `day` in `zone`."""
    return local_to_utc(datetime.combine(day, at), zone)


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(instant: datetime, zone: ZoneInfo, start: time, end: time) -> bool:
    """True when the local time of `instant` is in [start, end), which may wrap midnight."""
    local = instant.astimezone(zone).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def next_quiet_end(instant: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """The first instant at or after `instant` that is outside quiet hours."""
    if not in_quiet_hours(instant, zone, start, end):
        return instant
    local = instant.astimezone(zone)
    day = local.date()
    if local.time() >= end:
        day += timedelta(days=1)
    return local_datetime(day, end, zone)
