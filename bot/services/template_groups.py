"""The Messages page's groups (issue 18.4): templates by purpose, each group a screen, with the
reminder kinds together (a grid of kind × how long before) and the NEXT replies together (one
row per kind). A key this table does not know (one added later) lands in "Other replies", so
the page never loses a template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.services.templates import TemplateRow
from messages.defaults import APPOINTMENT_KINDS, REMINDER_OFFSETS

OFFSET_LABELS = {"3d": "3 days before", "1d": "1 day before", "2h": "2 hours before"}


@dataclass
class Group:
    slug: str
    title: str
    hint: str
    # Plain rows: (key, description, {language: row}), in the catalogue's order.
    rows: list[tuple[str, str, dict[str, TemplateRow]]] = field(default_factory=list)
    # Grid groups: kind -> column -> {language: row}.
    grid: dict[str, dict[str, dict[str, TemplateRow]]] = field(default_factory=dict)
    columns: list[tuple[str, str]] = field(default_factory=list)  # (column, label)


def _group_of(key: str) -> str:
    prefix = key.partition(".")[0]
    if key == "welcome" or prefix == "checkin":
        return "outreach"
    if prefix == "reminder":
        return "reminders"
    if prefix == "next_appointment" or key in ("no_appointment", "confirm_ack", "decline_ack"):
        return "appointments"
    if key in ("crisis",) or prefix == "crisis":
        return "safety"
    if key in ("help", "opt_out_confirm", "opt_in_confirm", "callback_ack"):
        return "keywords"
    if key in ("pause_confirm", "resume_confirm"):
        return "keywords"
    if key == "coach_page":
        return "staff"
    return "other"


def grouped(rows: Sequence[TemplateRow]) -> list[Group]:
    """The templates in their groups, in the page's order; empty groups are left out."""
    groups = {
        "outreach": Group(
            "outreach", "Welcome and check-ins", "What the program sends on its own."
        ),
        "reminders": Group(
            "reminders",
            "Appointment reminders",
            "One per kind of appointment and how long before it.",
            columns=[(o, OFFSET_LABELS.get(o, o)) for o in REMINDER_OFFSETS],
        ),
        "appointments": Group(
            "appointments",
            "Answers about appointments",
            "Replies to YES, NO and NEXT (one NEXT reply per kind of appointment).",
            columns=[("next", "Reply to NEXT")],
        ),
        "keywords": Group(
            "keywords",
            "Replies to keywords",
            "HELP, STOP in their own words, START, CALL ME, PAUSE, RESUME.",
        ),
        "safety": Group(
            "safety", "Crisis", "Sent at once, at any hour, when a text has crisis words."
        ),
        "other": Group(
            "other", "Other replies", "Numbers that are not enrolled, and anything else."
        ),
        "staff": Group("staff", "Texts to staff", "Pages to coaches; never sent to participants."),
    }
    rows_by_key: dict[str, dict[str, TemplateRow]] = {}
    order: list[str] = []
    for row in rows:
        if row.key not in rows_by_key:
            rows_by_key[row.key] = {}
            order.append(row.key)
        rows_by_key[row.key][row.language] = row
    for key in order:
        by_language = rows_by_key[key]
        group = groups[_group_of(key)]
        prefix, _, rest = key.partition(".")
        description = next(iter(by_language.values())).description
        if prefix == "reminder" and rest.count(".") == 1:
            kind, _, offset = rest.partition(".")
            group.grid.setdefault(kind, {})[offset] = by_language
        elif prefix == "next_appointment" and rest in APPOINTMENT_KINDS:
            group.grid.setdefault(rest, {})["next"] = by_language
        else:
            group.rows.append((key, description, by_language))
    return [g for g in groups.values() if g.rows or g.grid]
