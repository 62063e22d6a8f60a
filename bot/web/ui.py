"""Jinja filters shared by the dashboard pages (plain-language labels, local times)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask

from bot.services.queue import reason_label


def local_time(instant: datetime | None, zone: str) -> str:
    """`Mon 2 Mar, 10:05 AM EST` in the given IANA zone; empty for None."""
    if instant is None:
        return ""
    local = instant.astimezone(ZoneInfo(zone))
    return local.strftime("%a %-d %b, %-I:%M %p %Z")


def local_date(instant: datetime | None, zone: str) -> str:
    if instant is None:
        return ""
    return instant.astimezone(ZoneInfo(zone)).strftime("%a %-d %b %Y")


def init_app(app: Flask) -> None:
    app.jinja_env.filters["reason_label"] = reason_label
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["local_date"] = local_date
