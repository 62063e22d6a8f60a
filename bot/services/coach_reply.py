"""A staff member's reply to a participant, without Flask: may it go, what it says, when it goes.

Refused (ChangeError, shown next to the reply box with the typed text kept) to someone opted
out or closed, for an empty or too-long text, and for a text naming treatment, supervision or
court details unless a coordinator or admin chose to send it anyway. Queued in the outbox
exactly once per reply key (a double-clicked Send queues one text).

Quiet hours govern automated outreach only (DESIGN.md §1 "Time"): a reply is due at once and
may leave at any hour, through the urgent lane, unless it is the recipient's quiet hours, they
have not texted in the last 24 hours, and the staff member chose the morning ("send at 08:00",
the default then). A reply ends the wait of all the person's waiting texts (bot.services.inbox),
with who and when, and is audited. The caller commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.models import OutboundMessage, Participant
from bot.services import inbox
from bot.services.audit import record
from bot.services.conversation import ChangeError, check_can_text, clean_reply, quiet_hours_for
from bot.services.outbox import enqueue
from messages.sensitive import find_sensitive_terms

SEND_NOW, SEND_MORNING = "now", "morning"
# A reply to someone who texted this recently answers them: it goes at once, at any hour.
ANSWERS_A_TEXT_WITHIN = timedelta(hours=24)


class SensitiveWords(ChangeError):
    """The reply names something a text must never name."""

    def __init__(self, terms: list[str]) -> None:
        self.terms = terms
        super().__init__(
            "Not sent. Texts can be read by anyone who picks up the phone, so they never name "
            "treatment, supervision or court details. Please rephrase without: "
            f"{', '.join(terms)}."
        )


@dataclass(frozen=True)
class ReplyTiming:
    """When a reply written now would go, and whether the staff member has a choice."""

    answers_a_text: bool  # they texted in the last 24 h: the reply goes at once, any hour
    now_in_quiet: bool
    morning: datetime  # when their quiet hours end

    @property
    def offers_choice(self) -> bool:
        """ "Send now" or "send at 08:00": only in their quiet hours, to someone who has not
        texted in the last day."""
        return self.now_in_quiet and not self.answers_a_text


def reply_timing(session: Session, participant: Participant, now: datetime) -> ReplyTiming:
    quiet = quiet_hours_for(session, participant, now)
    return ReplyTiming(
        answers_a_text=inbox.texted_since(session, participant.id, now - ANSWERS_A_TEXT_WITHIN),
        now_in_quiet=quiet.now_in_quiet,
        morning=quiet.sends_at,
    )


@dataclass(frozen=True)
class QueuedReply:
    message: OutboundMessage
    created: bool  # False: the same form was submitted twice; nothing new was queued
    sends_at: datetime
    at_once: bool
    texts_answered: int  # how many of their waiting texts stopped waiting

    @property
    def segments(self) -> int:
        return self.message.segments


def send_staff_reply(
    session: Session,
    participant: Participant,
    *,
    body: str,
    staff_user_id: int,
    now: datetime,
    reply_key: str = "",
    when: str | None = None,
    may_override: bool = False,
    send_anyway: bool = False,
) -> QueuedReply:
    """Check, queue and audit one reply (see the module's docstring). `may_override`: the staff
    member may send sensitive words anyway (coordinators and admins), and `send_anyway` says
    they chose to. `when` is SEND_NOW or SEND_MORNING where the form offered the choice. An
    empty `reply_key` gets a fresh one."""
    check_can_text(participant)
    text = clean_reply(body)
    sensitive = find_sensitive_terms(text)
    if sensitive and not (may_override and send_anyway):
        raise SensitiveWords(sensitive)
    key = reply_key.strip()[:40] or secrets.token_urlsafe(12)
    timing = reply_timing(session, participant, now)
    at_once = not timing.offers_choice or when == SEND_NOW
    result = enqueue(
        session,
        idempotency_key=f"coach_reply:{participant.id}:{key}",
        purpose="coach_reply",
        channel=participant.channel,
        to_address=participant.address,
        body=text,
        now=now,
        send_after=now if at_once else timing.morning,
        participant_id=participant.id,
        created_by_id=staff_user_id,
        # A person chose this moment (or the morning): the sender never holds it back.
        ignore_quiet_hours=True,
    )
    answered = 0
    if result.created:
        answered = inbox.end_wait(
            session, kind="reply", user_id=staff_user_id, now=now, participant_id=participant.id
        ).texts
        record(
            session,
            now=now,
            action="participant.reply",
            actor="dashboard",
            user_id=staff_user_id,
            participant_id=participant.id,
            detail={
                "outbound_message_id": result.message.id,
                "segments": result.message.segments,
                "at_once": result.message.send_after <= now,
                "texts_answered": answered,
            },
        )
    return QueuedReply(
        message=result.message,
        created=result.created,
        sends_at=result.message.send_after,
        at_once=result.message.send_after <= now,
        texts_answered=answered,
    )
