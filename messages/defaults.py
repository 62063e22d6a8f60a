"""The messages a fresh install sends, and the keys coordinators edit them by.

The bodies live in ``messages/data/default_templates.json`` (key -> language -> body). They are
written like a peer coach would text: short, warm and neutral. They name only the participant's
first name, the coach's first name, the program's name and phone, and an appointment's date, time
and place; never a diagnosis, treatment, supervision, court, jail or prison. Reminders for every
kind of appointment therefore read the same ("your appointment"); the per-kind keys exist so a
coordinator may change them.

Spanish uses *tú*, the register of a peer, throughout. Spanish reminders ask for "C" to confirm
(a confirm keyword in every language) rather than "SÍ": "Í" is not in the GSM-7 alphabet and
would make every reminder a Unicode (UCS-2) message of two or three segments instead of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources

from messages.render import (
    TemplateError,
    allowed_placeholders_for,
    render_template,
    sample_context,
)

__all__ = [
    "APPOINTMENT_KINDS",
    "CHECKIN_VARIANTS",
    "CRISIS_KEYS",
    "LANGUAGES",
    "REMINDER_OFFSETS",
    "allowed_placeholders_for",
    "checkin_variant_key",
    "crisis_key",
    "default_templates",
    "describe_key",
    "next_appointment_key",
    "reminder_key",
    "template_keys",
]

LANGUAGES = ("en", "es")
APPOINTMENT_KINDS = ("court", "supervision", "treatment", "benefits", "medical", "housing", "other")
REMINDER_OFFSETS = ("3d", "1d", "2h")
CHECKIN_VARIANTS = 4
# The crisis reply by kind of crisis; any other kind ("self") gets the general "crisis" reply.
CRISIS_KEYS: Mapping[str, str] = {
    "overdose": "crisis.overdose",
    "other_in_danger": "crisis.other_in_danger",
    "violence": "crisis.violence",
}

_KIND_PHRASES: Mapping[str, str] = {
    "court": "a court appointment",
    "supervision": "a supervision appointment",
    "treatment": "a treatment appointment",
    "benefits": "a benefits appointment",
    "medical": "a medical appointment",
    "housing": "a housing appointment",
    "other": "any other appointment",
}
_OFFSET_PHRASES: Mapping[str, str] = {"3d": "3 days", "1d": "1 day", "2h": "2 hours"}

_FIXED_DESCRIPTIONS: Mapping[str, str] = {
    "welcome": (
        "Welcome and consent message: the first text, on the release date or at sign-up. "
        "Says who is texting, how often, and how to get help or stop"
    ),
    "help": "Reply to HELP, INFO or AYUDA: program name, phone, how to stop, and 988",
    "opt_out_confirm": (
        "Reply when someone asks to stop in their own words (Twilio answers a plain STOP itself)"
    ),
    "opt_in_confirm": "Reply when someone who had stopped messages asks to get them again",
    "crisis": (
        "Immediate reply when a message contains crisis words, sent even in quiet hours; "
        "must name 988 and 911"
    ),
    "crisis.overdose": (
        "Crisis reply when the message is about an overdose: names 911 first, then naloxone and 988"
    ),
    "crisis.other_in_danger": (
        "Crisis reply when the message is about someone else in danger: 988 helps people "
        "worried about someone else too; 911 for danger now"
    ),
    "crisis.violence": (
        "Crisis reply when the message is about hurting someone or being threatened: 911 and 988"
    ),
    "unknown_sender": "Reply to a number that is not enrolled: polite, no program details",
    "confirm_ack": "Reply when someone confirms an appointment (YES, C or SÍ)",
    "decline_ack": "Reply when someone says they can't make an appointment",
    "callback_ack": (
        "Reply to CALL ME or LLÁMAME: the coach will call (the text waits in the inbox for them)"
    ),
    "no_appointment": "Reply to NEXT or PRÓXIMA when the person has no upcoming appointment",
    "pause_confirm": (
        "Reply to PAUSE or PAUSA: check-ins paused for a week, reminders still go; "
        "names the date check-ins start again"
    ),
    "resume_confirm": "Reply to RESUME or SEGUIR: check-ins are on again",
    "coach_page": "Text to staff when a flag needs attention (goes to coaches, never participants)",
}


def template_keys() -> list[str]:
    """Every template key, in the order the editor shows them."""
    keys = ["welcome"]
    keys += [f"checkin.{n}" for n in range(1, CHECKIN_VARIANTS + 1)]
    keys += [
        reminder_key(kind, offset) for kind in APPOINTMENT_KINDS for offset in REMINDER_OFFSETS
    ]
    keys += [
        "help",
        "opt_out_confirm",
        "opt_in_confirm",
        "crisis",
        *CRISIS_KEYS.values(),
        "unknown_sender",
        "confirm_ack",
        "decline_ack",
        "callback_ack",
    ]
    keys += [next_appointment_key(kind) for kind in APPOINTMENT_KINDS]
    keys += ["no_appointment", "pause_confirm", "resume_confirm", "coach_page"]
    return keys


def crisis_key(kind: str | None) -> str:
    """The crisis reply for a kind of crisis (messages.crisis.CrisisResult.kind): ``crisis``, the
    general reply, for ``self`` or an unknown kind."""
    return CRISIS_KEYS.get(kind or "self", "crisis")


def checkin_variant_key(occurrence: int) -> str:
    """The check-in template for the ``occurrence``-th check-in (counted from 1), in rotation.

    1 -> ``checkin.1``, ..., 4 -> ``checkin.4``, 5 -> ``checkin.1`` again. Any integer is
    accepted (0 is the one before 1, so ``checkin.4``).
    """
    return f"checkin.{(occurrence - 1) % CHECKIN_VARIANTS + 1}"


def reminder_key(kind: str, offset: str) -> str:
    """The template key for a reminder, e.g. ``reminder.medical.1d``; ValueError if unknown."""
    if kind not in APPOINTMENT_KINDS:
        raise ValueError(f"unknown appointment kind {kind!r}; expected one of {APPOINTMENT_KINDS}")
    if offset not in REMINDER_OFFSETS:
        raise ValueError(f"unknown reminder offset {offset!r}; expected one of {REMINDER_OFFSETS}")
    return f"reminder.{kind}.{offset}"


def next_appointment_key(kind: str) -> str:
    """The reply to NEXT for an appointment of this kind, e.g. ``next_appointment.medical``.

    One key per kind, as for reminders: the shipped bodies all say "your next appointment"
    (neutral), and a coordinator may name the kind in their own words. ValueError if unknown.
    """
    if kind not in APPOINTMENT_KINDS:
        raise ValueError(f"unknown appointment kind {kind!r}; expected one of {APPOINTMENT_KINDS}")
    return f"next_appointment.{kind}"


def describe_key(key: str) -> str:
    """A plain-language description of a template key for coordinators; ValueError if unknown."""
    if key in _FIXED_DESCRIPTIONS:
        return _FIXED_DESCRIPTIONS[key]
    prefix, _, rest = key.partition(".")
    if prefix == "checkin" and rest.isdigit() and 1 <= int(rest) <= CHECKIN_VARIANTS:
        return (
            f"Check-in message, version {rest} of {CHECKIN_VARIANTS} "
            "(the versions take turns so check-ins don't all read the same)"
        )
    if prefix == "next_appointment" and rest in _KIND_PHRASES:
        return f"Reply to NEXT or PRÓXIMA when the next appointment is {_KIND_PHRASES[rest]}"
    if prefix == "reminder":
        kind, _, offset = rest.partition(".")
        if kind in _KIND_PHRASES and offset in _OFFSET_PHRASES:
            return f"Reminder {_OFFSET_PHRASES[offset]} before {_KIND_PHRASES[kind]}"
    raise ValueError(f"unknown template key {key!r}")


@cache
def _load() -> Mapping[tuple[str, str], str]:
    source = resources.files("messages").joinpath("data/default_templates.json")
    document = json.loads(source.read_text(encoding="utf-8"))
    raw: dict[str, dict[str, str]] = document["templates"]
    expected = set(template_keys())
    if set(raw) != expected:
        missing, extra = sorted(expected - set(raw)), sorted(set(raw) - expected)
        raise ValueError(f"default templates: missing keys {missing}, unexpected keys {extra}")
    templates: dict[tuple[str, str], str] = {}
    for key in template_keys():
        if set(raw[key]) != set(LANGUAGES):
            raise ValueError(f"default templates: {key!r} must have exactly {LANGUAGES}")
        allowed = allowed_placeholders_for(key)
        for language in LANGUAGES:
            body = raw[key][language]
            try:
                render_template(body, sample_context(language), allowed)
            except TemplateError as exc:
                raise ValueError(f"default template {key!r} ({language}): {exc}") from exc
            templates[(key, language)] = body
    return templates


def default_templates() -> dict[tuple[str, str], str]:
    """``(key, language) -> body`` for every key and language, each validated and renderable.

    Returns a fresh dict on each call; the file is read and checked once.
    """
    return dict(_load())
