"""The templates a fresh install ships with, and the catalogue of template keys.

Bodies live in `data/default_templates.json` so that translators can work on data, not code.
Spanish uses tú: the texts come from a peer, not an office. Reminder bodies are written once
per offset and used for every appointment kind; the per-kind keys exist so a coordinator can
change the wording for one kind. Nothing in a default names the kind of appointment.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

from .render import allowed_placeholders_for, validate_template

LANGUAGES = ("en", "es")
APPOINTMENT_KINDS = ("court", "supervision", "treatment", "benefits", "medical", "housing", "other")
REMINDER_OFFSETS = ("3d", "1d", "2h")
CHECKIN_VARIANTS = 4
_SINGLE_KEYS = (
    "help",
    "opt_out_confirm",
    "opt_in_confirm",
    "crisis",
    "unknown_sender",
    "confirm_ack",
    "decline_ack",
    "coach_page",
)
_OFFSET_WORDS = {"3d": "3 days before", "1d": "1 day before", "2h": "2 hours before"}
_KIND_WORDS = {
    "court": "a court date",
    "supervision": "a supervision (probation/parole) appointment",
    "treatment": "a treatment appointment",
    "benefits": "a benefits appointment",
    "medical": "a medical appointment",
    "housing": "a housing appointment",
    "other": "any other appointment",
}
_DESCRIPTIONS = {
    "welcome": "Welcome and consent: the first text, on the release date or at enrolment",
    "help": "Reply to HELP, INFO or AYUDA",
    "opt_out_confirm": "Confirmation after a plain-language opt-out (the carrier confirms STOP itself)",
    "opt_in_confirm": "Confirmation after START",
    "crisis": "Immediate reply to a message in crisis (must name 988 and 911)",
    "unknown_sender": "Reply to a number that is not enrolled",
    "confirm_ack": "Reply when someone confirms an appointment",
    "decline_ack": "Reply when someone says they can't make an appointment",
    "coach_page": "Text to staff when a flag needs them (no participant details)",
}


def reminder_key(kind: str, offset: str) -> str:
    return f"reminder.{kind}.{offset}"


def checkin_variant_key(occurrence: int) -> str:
    """Check-ins rotate through the variants so the texts do not feel robotic."""
    return f"checkin.{(occurrence - 1) % CHECKIN_VARIANTS + 1}"


def template_keys() -> list[str]:
    keys = ["welcome"]
    keys += [f"checkin.{n}" for n in range(1, CHECKIN_VARIANTS + 1)]
    keys += [
        reminder_key(kind, offset) for kind in APPOINTMENT_KINDS for offset in REMINDER_OFFSETS
    ]
    keys += list(_SINGLE_KEYS)
    return keys


def describe_key(key: str) -> str:
    if key.startswith("checkin."):
        return f"Check-in, variant {key.split('.')[1]} of {CHECKIN_VARIANTS} (rotated)"
    if key.startswith("reminder."):
        _, kind, offset = key.split(".")
        return f"Reminder {_OFFSET_WORDS[offset]} {_KIND_WORDS[kind]}"
    return _DESCRIPTIONS[key]


@cache
def _raw() -> dict[str, dict[str, str]]:
    text = files("messages").joinpath("data/default_templates.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def default_templates() -> dict[tuple[str, str], str]:
    """(key, language) -> body for every key and language, each validated."""
    result: dict[tuple[str, str], str] = {}
    for language in LANGUAGES:
        bodies = _raw()[language]
        for key in template_keys():
            source = f"reminder.{key.rsplit('.', 1)[1]}" if key.startswith("reminder.") else key
            body = bodies[source]
            validate_template(body, allowed_placeholders_for(key))
            result[(key, language)] = body
    return result
