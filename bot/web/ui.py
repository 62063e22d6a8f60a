"""Jinja filters shared by the dashboard pages (plain-language labels, local times)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask

from bot.services.delivery_errors import describe_error
from bot.services.queue import reason_label

# Plain names for the zones the participant form offers first.
ZONE_NAMES = {
    "America/New_York": "Eastern",
    "America/Chicago": "Central",
    "America/Denver": "Mountain",
    "America/Phoenix": "Arizona",
    "America/Los_Angeles": "Pacific",
    "America/Anchorage": "Alaska",
    "Pacific/Honolulu": "Hawaii",
    "America/Puerto_Rico": "Puerto Rico",
}


def zone_label(zone: str) -> str:
    """`Eastern (America/New_York)`; a zone without a plain name as it is."""
    name = ZONE_NAMES.get(zone)
    return f"{name} ({zone})" if name else zone


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


def without_page(args: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in args.items() if k != "page"}


# Flash categories shown next to the conversation rather than at the top of the page.
THREAD_CATEGORIES = ("thread-success", "thread-info", "thread-error")


def waiting_count() -> int | None:
    """Conversations waiting for a reply in the signed-in user's view (the navigation's
    number), or None when nobody is signed in. Computed when a page asks for it."""
    from flask_login import current_user

    from bot.services.inbox import waiting_count as count

    from .context import db

    if not current_user.is_authenticated:
        return None
    return count(db(), current_user)


def init_app(app: Flask) -> None:
    from .context import state

    app.jinja_env.globals["thread_categories"] = THREAD_CATEGORIES
    app.jinja_env.globals["waiting_count"] = waiting_count
    app.jinja_env.globals["zone_label"] = zone_label
    app.jinja_env.filters["error_words"] = describe_error

    app.jinja_env.filters["zoneinfo"] = ZoneInfo
    app.jinja_env.filters["dict_without_page"] = without_page
    app.context_processor(lambda: {"config_zone": state().config.program_timezone})
    app.jinja_env.filters["reason_label"] = reason_label
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["local_date"] = local_date
