"""An appointment's place in a text: whether it may be named, checked where it is entered and
again when a reminder is rendered (issue 19, point 4).

A place is free text a coordinator, a coach or a CSV file writes, and it is texted to a phone
others may see: "County Court Room 3" says more than the person chose to share. It is read with
the same sensitive-word rules as the templates (messages/sensitive.py, which sees through
look-alike letters, digits and dots: "Cоurt" with a Cyrillic о, "C0urt", "P.O.", "prob@tion").

The program's `locations` setting (bot/services/settings.py) decides:

- `include_in_reminders` (default on): whether reminders and the reply to NEXT name the place at
  all. Off, they always say the neutral phrase and places are stored without any check.
- `sensitive`: what happens to a place with a sensitive word where it is entered (CSV import,
  the appointment form): `"generic"` (default) stores it, warns whoever entered it, and texts
  the neutral phrase instead; `"refuse"` refuses it (an import line error, a form error; nothing
  is saved).

Whatever the setting, a reminder never names a place with a sensitive word: the rendering
checks again at send time (a place imported before the rule, or edited in the database, goes
out as the neutral phrase). The neutral phrase fits the templates' "..., at 10:00 AM, {place}":
"the place you were given" / "el lugar que te indicaron".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Appointment, Participant
from bot.services.settings import get_setting
from messages.sensitive import find_sensitive_terms

NEUTRAL_PLACE = {"en": "the place you were given", "es": "el lugar que te indicaron"}
SENSITIVE_HANDLING = {
    "generic": "Keep it, and text the neutral phrase instead of the place",
    "refuse": "Refuse it where it is entered (import, appointment form)",
}
DEFAULT_HANDLING = "generic"


@dataclass(frozen=True)
class LocationPolicy:
    """The program's `locations` setting, read once."""

    include_in_reminders: bool = True
    sensitive: str = DEFAULT_HANDLING

    @property
    def refuses(self) -> bool:
        return self.include_in_reminders and self.sensitive == "refuse"


def location_policy(session: Session) -> LocationPolicy:
    value = get_setting(session, "locations")
    handling = value.get("sensitive")
    return LocationPolicy(
        include_in_reminders=bool(value.get("include_in_reminders", True)),
        sensitive=handling if handling in SENSITIVE_HANDLING else DEFAULT_HANDLING,
    )


def neutral_place(language: str) -> str:
    return NEUTRAL_PLACE.get(language, NEUTRAL_PLACE["en"])


def sensitive_words(location: str | None) -> list[str]:
    """The sensitive words in a place, as messages/sensitive.py spells them ([] for none)."""
    return find_sensitive_terms(location) if location else []


def place_for_text(location: str | None, language: str, *, include: bool = True) -> str:
    """What a text says for the place: the place itself, or the neutral phrase when the program
    leaves places out, there is none, or it holds a sensitive word. The last line of defence:
    every rendering of a reminder or of the reply to NEXT goes through here."""
    if include and location and not sensitive_words(location):
        return location
    return neutral_place(language)


def _quoted(words: list[str]) -> str:
    return ", ".join(f"“{word}”" for word in words)


@dataclass(frozen=True)
class PlaceCheck:
    """A place with a sensitive word, and whether the program refuses it."""

    words: list[str]
    refused: bool

    @property
    def message(self) -> str:
        """Why, in the words a coordinator acts on (without the place: callers quote it)."""
        found = f"has a sensitive word ({_quoted(self.words)})"
        if self.refused:
            return (
                f"{found}, and this program's reminders may not name such a place; "
                "write a neutral place (an address or a room) or leave it empty"
            )
        return (
            f"{found}; reminders will say “{neutral_place('en')}” "
            f"(Spanish: “{neutral_place('es')}”) instead of naming it"
        )


def check_place(location: str | None, policy: LocationPolicy) -> PlaceCheck | None:
    """None when the place may be stored and texted as it is (or is never texted)."""
    if not policy.include_in_reminders:
        return None
    words = sensitive_words(location)
    if not words:
        return None
    return PlaceCheck(words, refused=policy.refuses)


def withheld_words(session: Session, appointments: Iterable[Appointment]) -> dict[int, list[str]]:
    """Appointment id -> the sensitive words that keep its place out of reminders, for those
    appointments whose place reminders will not name because of them (the participant page)."""
    if not location_policy(session).include_in_reminders:
        return {}
    return {a.id: words for a in appointments if (words := sensitive_words(a.location))}


@dataclass(frozen=True)
class WithheldPlace:
    """An upcoming appointment whose reminders will not name its place."""

    appointment_id: int
    participant_id: int
    participant_name: str
    external_id: str
    kind: str
    starts_at: datetime
    words: list[str]


def withheld_places(session: Session, now: datetime, limit: int = 50) -> list[WithheldPlace]:
    """Upcoming scheduled or confirmed appointments whose place holds a sensitive word (so
    reminders say the neutral phrase), soonest first: what the coordinator is shown on the
    settings page, whichever way the place got in (an import before the rule, the database)."""
    if not location_policy(session).include_in_reminders:
        return []
    rows = session.execute(
        select(Appointment, Participant.first_name, Participant.external_id)
        .join(Participant, Participant.id == Appointment.participant_id)
        .where(
            Appointment.starts_at >= now,
            Appointment.status.in_(("scheduled", "confirmed")),
            Appointment.location.is_not(None),
        )
        .order_by(Appointment.starts_at, Appointment.id)
    ).all()
    found: list[WithheldPlace] = []
    read: dict[str, list[str]] = {}  # many appointments share a place: read each once
    for appointment, first_name, external_id in rows:
        place = appointment.location or ""
        words = read[place] if place in read else read.setdefault(place, sensitive_words(place))
        if words:
            found.append(
                WithheldPlace(
                    appointment.id,
                    appointment.participant_id,
                    first_name,
                    external_id,
                    appointment.kind,
                    appointment.starts_at,
                    words,
                )
            )
            if len(found) >= limit:
                break
    return found
