"""A coach's reply to a participant, without Flask: may it go, what it says, when it goes.

Refused (ChangeError, shown to the coach as it is) to someone opted out or closed, for an empty
or too-long text, and for a text naming treatment, supervision or court details unless a
coordinator or admin chose to send it anyway. Queued in the outbox exactly once per reply key
(a double-clicked Send queues one text); in the person's quiet hours it waits for the morning.
The caller commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.models import Participant
from bot.services.audit import record
from bot.services.conversation import ChangeError, check_can_text, clean_reply, quiet_hours_for
from bot.services.outbox import enqueue
from messages.segments import count_segments
from messages.sensitive import find_sensitive_terms


class SensitiveWords(ChangeError):
    """The reply names something a text must never name."""

    def __init__(self, terms: list[str]) -> None:
        self.terms = terms
        super().__init__(
            "Texts can be read by anyone who picks up the phone, so they never name treatment, "
            f"supervision or court details. Please rephrase without: {', '.join(terms)}."
        )


@dataclass(frozen=True)
class QueuedReply:
    segments: int
    # When it goes: now, or the end of the person's quiet hours.
    sends_at: datetime
    in_quiet_hours: bool
    # False when this reply key was already queued (nothing new was sent).
    created: bool


def queue_coach_reply(
    session: Session,
    participant: Participant,
    *,
    body: str,
    staff_user_id: int,
    may_override: bool,
    send_anyway: bool,
    reply_key: str,
    now: datetime,
) -> QueuedReply:
    """Check and queue one reply (see the module's docstring). `may_override`: the staff member
    may send sensitive words anyway (coordinators and admins), and `send_anyway` says they
    chose to. An empty `reply_key` gets a fresh one."""
    check_can_text(participant)
    text = clean_reply(body)
    sensitive = find_sensitive_terms(text)
    if sensitive and not (may_override and send_anyway):
        raise SensitiveWords(sensitive)
    key = reply_key.strip()[:40] or secrets.token_urlsafe(12)
    quiet = quiet_hours_for(session, participant, now)
    result = enqueue(
        session,
        idempotency_key=f"coach_reply:{participant.id}:{key}",
        purpose="coach_reply",
        channel=participant.channel,
        to_address=participant.address,
        body=text,
        now=now,
        send_after=quiet.sends_at,
        participant_id=participant.id,
        created_by_id=staff_user_id,
    )
    if result.created:
        record(
            session,
            now=now,
            action="participant.reply",
            actor="dashboard",
            user_id=staff_user_id,
            participant_id=participant.id,
            detail={"outbound_message_id": result.message.id, "segments": result.message.segments},
        )
    return QueuedReply(
        segments=count_segments(text).segments,
        sends_at=quiet.sends_at,
        in_quiet_hours=quiet.now_in_quiet,
        created=result.created,
    )
