"""Self-service keywords: what CALL ME, NEXT, PAUSE and RESUME do, and the reply each gets.

Called by bot/services/inbound.py once a text from a known participant is classified as one of
them (messages/keywords.py). Each handler acts and returns an `Answer`: the reply to send (in
the person's language; None for nobody to text, e.g. someone who opted out) and whether the
text needs a person (`needs_reply`: it waits in the inbox until staff answer it).

- CALL ME / LLÁMAME: a callback request. The text needs a person (`needs_reply=True`), an audit
  row records the request, and the reply says the coach will call.
- NEXT / PRÓXIMA: the next upcoming appointment (scheduled or confirmed): its date, time and
  place in the person's zone and language, through the `next_appointment.<kind>` template
  (neutral as shipped, like reminders; a coordinator may name the kind), or `no_appointment`.
- PAUSE / PAUSA: check-ins and the welcome are held for `PAUSE_FOR` (participant column
  `checkins_paused_until`, written only here); reminders still go. The reply names the date
  check-ins start again. A second PAUSE starts the week again from now.
- RESUME / SEGUIR: clears the pause, and a check-in or welcome the sender had moved to the end
  of the pause goes now instead. From someone who opted out, RESUME is START (see
  `as_start_if_opted_out`): "resume" opted people back in before it was its own keyword.

The sender's side of a pause is `sendability.hold_for`, asked for each welcome and check-in
at enqueue and at claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.config import Config
from bot.log import log_event
from bot.models import Appointment, OutboundMessage, Participant, PlannedContact
from bot.services import audit
from bot.services.inbound_store import Incoming
from bot.services.sendability import HOLDABLE
from bot.services.templates import format_local_date, participant_context
from messages.defaults import next_appointment_key
from messages.keywords import Intent

log = logging.getLogger(__name__)

INTENTS = frozenset({Intent.CALL_ME, Intent.NEXT, Intent.PAUSE, Intent.RESUME})
PAUSE_FOR = timedelta(days=7)
# What a participant's PAUSE holds (planned contact kinds = outbox purposes); reminders go on.
HELD_WHILE_PAUSED = HOLDABLE
# Appointment statuses NEXT reports (as the planner reminds of).
UPCOMING_STATUSES = ("scheduled", "confirmed")

# (session, key, language, context) -> body: inbound's renderer, which falls back to the
# shipped default when a coordinator's edit cannot be rendered.
Render = Callable[[Session, str, str, dict[str, str]], str]


@dataclass(frozen=True)
class Answer:
    # The reply, or None for no text.
    body: str | None
    # The text needs a person: it waits in the inbox until staff reply or mark it done.
    needs_reply: bool = False


def as_start_if_opted_out(intent: Intent, participant: Participant) -> Intent:
    """RESUME from someone who opted out means START (it did before RESUME was a keyword)."""
    if intent is Intent.RESUME and participant.status == "opted_out":
        return Intent.START
    return intent


def answer(
    session: Session,
    message: Incoming,
    participant: Participant,
    intent: Intent,
    *,
    now: datetime,
    config: Config,
    render: Render,
) -> Answer:
    """Act on one self-service keyword from `participant` and return the reply. Someone who
    opted out gets no text; a CALL ME from them still waits for a person."""
    texts = participant.status != "opted_out"
    if intent is Intent.CALL_ME:
        audit.record(
            session,
            now=now,
            action="participant.callback_requested",
            actor="participant",
            participant_id=participant.id,
            detail={"inbound_message_id": message.id},
        )
        body = None
        if texts:
            context = participant_context(session, participant, config)
            body = render(session, "callback_ack", participant.language, context)
        return Answer(body, needs_reply=True)
    if not texts:
        return Answer(None)
    if intent is Intent.NEXT:
        return Answer(
            _next_appointment(session, participant, now=now, config=config, render=render)
        )
    if intent is Intent.PAUSE:
        return Answer(_pause(session, participant, now=now, config=config, render=render))
    if intent is Intent.RESUME:
        return Answer(_resume(session, participant, now=now, config=config, render=render))
    raise ValueError(f"not a self-service intent: {intent!r}")


def next_appointment(
    session: Session, participant: Participant, now: datetime
) -> Appointment | None:
    """The person's nearest appointment still to come (scheduled or confirmed)."""
    return session.scalars(
        select(Appointment)
        .where(
            Appointment.participant_id == participant.id,
            Appointment.starts_at > now,
            Appointment.status.in_(UPCOMING_STATUSES),
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(1)
    ).first()


def _next_appointment(
    session: Session, participant: Participant, *, now: datetime, config: Config, render: Render
) -> str:
    appointment = next_appointment(session, participant, now)
    context = participant_context(session, participant, config, appointment)
    key = "no_appointment" if appointment is None else next_appointment_key(appointment.kind)
    return render(session, key, participant.language, context)


def _pause(
    session: Session, participant: Participant, *, now: datetime, config: Config, render: Render
) -> str:
    until = now + PAUSE_FOR
    previous = participant.checkins_paused_until
    participant.checkins_paused_until = until
    participant.updated_at = now
    audit.record(
        session,
        now=now,
        action="participant.checkins_paused",
        actor="participant",
        participant_id=participant.id,
        detail={
            "until": until.isoformat(),
            "previous_until": previous.isoformat() if previous is not None else None,
        },
    )
    log_event(log, "participant.checkins_paused", participant_id=participant.id)
    context = participant_context(session, participant, config)
    context["resume_date"] = format_local_date(
        until, ZoneInfo(participant.timezone), participant.language
    )
    return render(session, "pause_confirm", participant.language, context)


def _resume(
    session: Session, participant: Participant, *, now: datetime, config: Config, render: Render
) -> str:
    previous = participant.checkins_paused_until
    if previous is not None:
        participant.checkins_paused_until = None
        participant.updated_at = now
        if previous > now:
            # What the sender moved to the end of the pause goes now instead (the sender
            # defers a held welcome or check-in to exactly `checkins_paused_until`).
            session.execute(
                update(PlannedContact)
                .where(
                    PlannedContact.participant_id == participant.id,
                    PlannedContact.state == "planned",
                    PlannedContact.kind.in_(HELD_WHILE_PAUSED),
                    PlannedContact.send_after == previous,
                )
                .values(send_after=now)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.participant_id == participant.id,
                    OutboundMessage.status == "pending",
                    OutboundMessage.purpose.in_(HELD_WHILE_PAUSED),
                    OutboundMessage.send_after == previous,
                )
                .values(send_after=now)
                .execution_options(synchronize_session=False)
            )
        audit.record(
            session,
            now=now,
            action="participant.checkins_resumed",
            actor="participant",
            participant_id=participant.id,
            detail={"paused_until": previous.isoformat()},
        )
        log_event(log, "participant.checkins_resumed", participant_id=participant.id)
    context = participant_context(session, participant, config)
    return render(session, "resume_confirm", participant.language, context)
