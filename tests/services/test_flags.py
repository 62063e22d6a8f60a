"""raise_flag keeps one unresolved flag per participant and reason and raises its severity."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import FlagEvent
from bot.services.flags import list_flags, raise_flag
from tests.factories import make_participant, make_user


def test_second_miss_raises_the_open_flag_instead_of_opening_another(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    first = raise_flag(
        session, reason="no_reply", severity="normal", now=now, participant_id=participant.id
    )
    second = raise_flag(
        session,
        reason="no_reply",
        severity="high",
        now=now + timedelta(days=2),
        participant_id=participant.id,
    )
    session.commit()
    assert first.created and not second.created and second.severity_raised
    assert second.flag.id == first.flag.id
    assert (second.flag.severity, second.flag.occurrences) == ("high", 2)
    kinds = session.scalars(select(FlagEvent.kind).order_by(FlagEvent.id)).all()
    assert kinds == ["opened", "severity_raised"]


def test_unknown_sender_flags_are_one_per_number(session: Session, now: datetime) -> None:
    a = raise_flag(
        session, reason="unknown_sender", severity="normal", now=now, sender_address="+12025550180"
    )
    b = raise_flag(
        session, reason="unknown_sender", severity="normal", now=now, sender_address="+12025550180"
    )
    c = raise_flag(
        session, reason="unknown_sender", severity="normal", now=now, sender_address="+12025550181"
    )
    assert a.flag.id == b.flag.id != c.flag.id


def test_list_orders_urgent_first_then_oldest_and_masks_phones(
    session: Session, now: datetime
) -> None:
    coach = make_user(session, now, email="marcus@example.org")
    old = make_participant(session, now, external_id="L-1", phone="+12025550191", coach_id=coach.id)
    new = make_participant(session, now, external_id="L-2", phone="+12025550192")
    raise_flag(
        session,
        reason="no_reply",
        severity="normal",
        now=now - timedelta(hours=5),
        participant_id=old.id,
    )
    raise_flag(session, reason="crisis", severity="urgent", now=now, participant_id=new.id)
    raise_flag(
        session,
        reason="opted_out",
        severity="info",
        now=now - timedelta(days=1),
        participant_id=old.id,
    )
    session.commit()
    rows = list_flags(session)
    assert [(r.participant, r.reason) for r in rows] == [
        ("L-2", "crisis"),
        ("L-1", "no_reply"),
        ("L-1", "opted_out"),
    ]
    assert rows[1].coach == "marcus@example.org"
    assert rows[0].as_json()["phone_masked"] == "+1******0192"


def test_lifecycle_open_acknowledged_resolved_records_who_and_when(
    session: Session, now: datetime
) -> None:
    import pytest

    from bot.services.flags import FlagStateError, acknowledge_flag, resolve_flag

    coach = make_user(session, now)
    participant = make_participant(session, now, coach_id=coach.id)
    flag = raise_flag(
        session, reason="crisis", severity="urgent", now=now, participant_id=participant.id
    ).flag
    flag.next_page_at = now + timedelta(minutes=15)
    acknowledge_flag(session, flag, user_id=coach.id, now=now + timedelta(minutes=3))
    assert (flag.state, flag.acknowledged_by_id, flag.next_page_at) == (
        "acknowledged",
        coach.id,
        None,
    )
    with pytest.raises(FlagStateError):
        acknowledge_flag(session, flag, user_id=coach.id, now=now)
    with pytest.raises(FlagStateError):
        resolve_flag(session, flag, outcome="shrug", note=None, now=now, user_id=coach.id)
    resolve_flag(
        session,
        flag,
        outcome="reached",
        note="Talked by phone",
        now=now + timedelta(hours=1),
        user_id=coach.id,
    )
    session.commit()
    events = session.scalars(
        select(FlagEvent).where(FlagEvent.flag_id == flag.id).order_by(FlagEvent.id)
    ).all()
    assert [(e.kind, e.actor_user_id) for e in events] == [
        ("opened", None),
        ("acknowledged", coach.id),
        ("resolved", coach.id),
    ]
    assert (flag.state, flag.outcome, flag.note) == ("resolved", "reached", "Talked by phone")
