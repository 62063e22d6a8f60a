"""May this message go now? One answer, given at the three moments a text is judged:

- at enqueue (scheduler/enqueue.py), when a due planned contact would become an outbox row;
- at claim (bot/services/outbox/claims.py), when a pending row would be claimed for sending;
- at the last look (scheduler/send.py), just before the request, with the person's status as
  committed then and the clock as it is then (a tick that sends for minutes must not carry its
  start time into quiet hours or past a window's end).

`decide` takes plain values, not rows, so the enqueue loop (tuples read by one SELECT), the
claim (rows read by one SELECT) and the last look (a claim and a status) all call it. Its
rules, in the order they are applied (the first that matches decides):

| # | when                                                          | verdict                        |
|---|---------------------------------------------------------------|--------------------------------|
| 1 | the recipient opted out                                       | cancelled `participant_opted_out` (never texted, not even a crisis reply) |
| 2 | the recipient is paused or closed, purpose not a crisis reply | cancelled `participant_<status>` |
| 3 | `not_after` has passed                                        | skipped `window_closed` (never sent late) |
| 4 | the caller already settled the message itself (`withdrawn`: its planned contact was cancelled by a re-plan, its appointment cancelled, a later reminder due) | that verdict |
| 5 | a welcome or check-in is held (`hold`: the person's own PAUSE, or an open `crisis` flag), or any automated text is (an open `number_changed` flag), or any text but an answer is (no recorded consent source while the program requires one) | deferred to the hold's end, or skipped with the hold's reason when that is at or after `not_after` |
| 6 | a staff recipient is no longer active                         | cancelled `user_inactive`       |
| 7 | the recipient's quiet hours (unless `ignore_quiet_hours`), and they end at or after `not_after` | skipped `window_closed` |
| 8 | the recipient's quiet hours (unless `ignore_quiet_hours`)    | deferred to the morning (`send_after`) |
| 9 | WhatsApp outside the person's 24-hour window (`whatsapp`), with an approved template mapped | send as that template (`SEND_TEMPLATE`) |
| 10 | WhatsApp outside the window, no template mapped              | `needs_template` (never sent as free text; bot/services/whatsapp_window.py) |
| 11 | otherwise                                                     | send                            |

Holds (`hold_for`): automation steps back while a person has asked for a break or is in crisis,
but appointment reminders still go (a missed court date costs more than a text). A PAUSE holds
until its end; an open crisis flag holds for `CRISIS_RECHECK` at a time, so the held texts go
on the first pass after a coach resolves the flag, while their windows are still open
(DESIGN.md, Inbox: "they resume when it resolves").

Consent evidence (issue 19.3): while the program setting `require_consent_evidence` is on, a
person with no recorded consent source (bot.services.consent_evidence) gets nothing but what
answers them: the welcome, check-ins, reminders and a staff text to someone who has not
texted in the last 24 hours are held (`HELD_FOR_EVIDENCE`) for `CRISIS_RECHECK` at a time,
never cancelled, and go on the first pass after a source is recorded. Replies in or after the
webhook's answer (HELP, opt-out and opt-in confirmations, acknowledgements: purpose `reply`),
crisis replies and a staff reply to someone who texted in the last 24 hours answer a text the
person sent, and go (the same line DESIGN.md §1 "Time" draws for quiet hours).

A status of None is an active person or a recipient who is not a participant. At the last
look a "cancelled" verdict gives the claim back for the next claim to settle, and "skipped"
or "deferred" also means that time has run out for the tick (see scheduler/send.py).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.bulk import in_ids
from bot.models import Flag
from bot.services.settings import get_setting
from bot.timeutil import in_quiet_hours, next_quiet_end, parse_hhmm

# Purposes that still go to a paused or closed participant (never to an opted-out one).
SENT_WHILE_PAUSED = ("crisis_reply",)
# Automated outreach that a hold (a PAUSE, an open crisis flag) holds back; reminders still go.
HOLDABLE = ("welcome", "checkin")
# What an open number_changed flag holds: every automated text, reminders too (a court date
# must not go to a stranger); staff replies and crisis replies still go.
HELD_FOR_NUMBER = ("welcome", "checkin", "reminder")
# What a missing consent source holds while the program requires one: every text but an
# answer to the person (a `coach_reply` answers them when they texted in ANSWERS_WITHIN).
HELD_FOR_EVIDENCE = ("welcome", "checkin", "reminder", "coach_reply")
EVIDENCE_HOLD = "consent_evidence_missing"
# A staff reply to someone who texted this recently answers them (bot.services.coach_reply).
ANSWERS_WITHIN = timedelta(hours=24)
# How long an open crisis flag holds a welcome or check-in before it is looked at again (and
# a missing consent source or a number in doubt holds a text).
CRISIS_RECHECK = timedelta(minutes=5)


class Verdict(NamedTuple):
    # "send", "cancelled", "skipped", "deferred" or "needs_template"
    action: str
    reason: str = ""
    send_after: datetime | None = None  # deferred: the end of the recipient's quiet hours


SEND = Verdict("send")
# Outside WhatsApp's 24-hour window: as the approved template mapped for the message.
SEND_TEMPLATE = Verdict("send", "whatsapp_template")
NEEDS_TEMPLATE = Verdict("needs_template", "whatsapp_template_missing")
_WINDOW_CLOSED = Verdict("skipped", "window_closed")
# What callers pass as `withdrawn`.
SUPERSEDED = Verdict("cancelled", "superseded")
APPOINTMENT_CANCELLED = Verdict("cancelled", "appointment_cancelled")
LATER_REMINDER_DUE = Verdict("skipped", "later_reminder_due")
_USER_INACTIVE = Verdict("cancelled", "user_inactive")
_STATUS = {
    status: Verdict("cancelled", f"participant_{status}")
    for status in ("opted_out", "paused", "closed")
}


class WhatsApp(NamedTuple):
    """A WhatsApp message's standing against the 24-hour window, read by the caller in bulk
    (bot.services.whatsapp_window.last_inbound)."""

    in_window: bool
    has_template: bool


class Hold(NamedTuple):
    until: datetime
    # "number_changed", "consent_evidence_missing", "crisis_open" or "checkins_paused"
    reason: str


def hold_for(
    purpose: str,
    *,
    now: datetime,
    paused_until: datetime | None,
    crisis_open: bool,
    number_changed: bool = False,
    evidence_missing: bool = False,
    last_inbound: datetime | None = None,
) -> Hold | None:
    """The hold on a message of this purpose (or planned contact of this kind), if any.
    `evidence_missing`: the program requires a consent source and this person has none;
    `last_inbound`: when they last texted (a staff reply within ANSWERS_WITHIN answers them)."""
    if number_changed and purpose in HELD_FOR_NUMBER:
        return Hold(now + CRISIS_RECHECK, "number_changed")
    if evidence_missing and purpose in HELD_FOR_EVIDENCE:
        answers = (
            purpose == "coach_reply"
            and last_inbound is not None
            and now - last_inbound < ANSWERS_WITHIN
        )
        if not answers:
            return Hold(now + CRISIS_RECHECK, EVIDENCE_HOLD)
    if purpose not in HOLDABLE:
        return None
    if crisis_open:
        return Hold(now + CRISIS_RECHECK, "crisis_open")
    if paused_until is not None and paused_until > now:
        return Hold(paused_until, "checkins_paused")
    return None


def crisis_open(
    participant_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> ColumnElement[bool]:
    """Whether that participant has an unresolved crisis flag (one index probe: the unique
    index of open flags by participant and reason)."""
    return exists().where(
        Flag.participant_id == participant_id, Flag.reason == "crisis", Flag.state != "resolved"
    )


def in_crisis(session: Session, participant_ids: set[int]) -> set[int]:
    """Those of these participants who have an unresolved crisis flag."""
    if not participant_ids:
        return set()
    return set(
        session.scalars(
            select(Flag.participant_id).where(
                in_ids(session, Flag.participant_id, participant_ids),
                Flag.reason == "crisis",
                Flag.state != "resolved",
            )
        )
    )


class QuietHours:
    """The program's quiet hours (recipient local time), with the answer for each zone kept
    for the last instant asked about: a batch judged at one `now` computes it once per zone."""

    def __init__(self, start: time, end: time) -> None:
        self.start, self.end = start, end
        self._instant: datetime | None = None
        self._quiet: dict[ZoneInfo, bool] = {}

    def is_quiet(self, instant: datetime, zone: ZoneInfo) -> bool:
        if instant != self._instant:
            self._instant, self._quiet = instant, {}
        quiet = self._quiet.get(zone)
        if quiet is None:
            quiet = self._quiet[zone] = in_quiet_hours(instant, zone, self.start, self.end)
        return quiet

    def morning(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """The first instant at or after `instant` outside quiet hours."""
        return next_quiet_end(instant, zone, self.start, self.end)


def quiet_hours(session: Session) -> QuietHours:
    """The quiet hours as the program's settings say now."""
    value = get_setting(session, "quiet_hours")
    return QuietHours(parse_hhmm(value["start"]), parse_hhmm(value["end"]))


def decide(
    now: datetime,
    *,
    status: str | None,
    purpose: str,
    not_after: datetime | None,
    zone: ZoneInfo,
    quiet: QuietHours,
    ignore_quiet_hours: bool = False,
    withdrawn: Verdict | None = None,
    hold: Hold | None = None,
    user_active: bool = True,
    whatsapp: WhatsApp | None = None,
) -> Verdict:
    """Whether a message may go at `now` (see the module's table of rules)."""
    if (status is not None and status != "active") and (
        status == "opted_out" or purpose not in SENT_WHILE_PAUSED
    ):
        return _STATUS.get(status) or Verdict("cancelled", f"participant_{status}")
    if not_after is not None and not_after <= now:
        return _WINDOW_CLOSED
    if withdrawn is not None:
        return withdrawn
    if hold is not None:
        if not_after is not None and hold.until >= not_after:
            return Verdict("skipped", hold.reason)
        return Verdict("deferred", hold.reason, hold.until)
    if not user_active:
        return _USER_INACTIVE
    if not ignore_quiet_hours and quiet.is_quiet(now, zone):
        morning = quiet.morning(now, zone)
        if not_after is not None and morning >= not_after:
            return _WINDOW_CLOSED
        return Verdict("deferred", "quiet_hours", morning)
    if whatsapp is not None and not whatsapp.in_window:
        return SEND_TEMPLATE if whatsapp.has_template else NEEDS_TEMPLATE
    return SEND
