"""A coach's reply, without Flask (bot.services.coach_reply)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import AuditLog, OutboundMessage, Participant, User
from bot.services.coach_reply import QueuedReply, SensitiveWords, send_staff_reply
from bot.services.conversation import ChangeError
from tests.factories import make_participant, make_user


def _reply(
    session: Session, person: Participant, staff: User, now: datetime, body: str, **kw: Any
) -> QueuedReply:
    values: dict[str, Any] = {"may_override": False, "send_anyway": False, "reply_key": "k1"}
    values.update(kw)
    return send_staff_reply(session, person, body=body, staff_user_id=staff.id, now=now, **values)


def test_a_reply_is_queued_once_per_key_and_audited(session: Session, now: datetime) -> None:
    coach = make_user(session, now)
    person = make_participant(session, now, coach_id=coach.id)
    first = _reply(session, person, coach, now, "  See you Tuesday  ")
    again = _reply(session, person, coach, now, "See you Tuesday")
    assert first.created and not again.created and first.segments == 1
    message = session.scalars(select(OutboundMessage)).one()
    assert (message.purpose, message.body, message.created_by_id) == (
        "coach_reply",
        "See you Tuesday",
        coach.id,
    )
    assert session.scalars(select(AuditLog.action)).all() == ["participant.reply"]


def test_nothing_goes_to_someone_who_opted_out(session: Session, now: datetime) -> None:
    coach = make_user(session, now)
    person = make_participant(session, now, status="opted_out")
    with pytest.raises(ChangeError, match="opted out"):
        _reply(session, person, coach, now, "hello")
    assert session.scalars(select(OutboundMessage)).all() == []


def test_sensitive_words_are_refused_unless_a_coordinator_sends_anyway(
    session: Session, now: datetime
) -> None:
    coach = make_user(session, now)
    coordinator = make_user(session, now, role="coordinator")
    person = make_participant(session, now)
    body = "How did your parole meeting go?"
    with pytest.raises(SensitiveWords) as refused:
        _reply(session, person, coach, now, body, send_anyway=True)
    assert refused.value.terms
    queued = _reply(session, person, coordinator, now, body, may_override=True, send_anyway=True)
    assert queued.created
