from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Participant
from bot.services.caseload import get_visible_participant, visible_participants
from bot.services.flags import raise_flag
from tests.factories import make_participant, make_user


def _names(session: Session, viewer: object) -> set[str]:
    query = visible_participants(viewer).order_by(Participant.id)  # type: ignore[arg-type]
    return {p.external_id for p in session.scalars(query)}


def test_coach_sees_own_and_covered_caseload_only(session: Session, now: datetime) -> None:
    a = make_user(session, now)
    b = make_user(session, now)
    c = make_user(session, now)
    b.covering_user_id = a.id  # a covers b
    make_participant(session, now, external_id="A1", coach_id=a.id)
    make_participant(session, now, external_id="B1", coach_id=b.id)
    make_participant(session, now, external_id="C1", coach_id=c.id)
    make_participant(session, now, external_id="NONE", coach_id=None)
    session.flush()
    assert _names(session, a) == {"A1", "B1"}
    assert _names(session, b) == {"B1"}
    assert _names(session, c) == {"C1"}


def test_coordinators_and_admins_see_everyone(session: Session, now: datetime) -> None:
    coach = make_user(session, now)
    make_participant(session, now, external_id="A1", coach_id=coach.id)
    make_participant(session, now, external_id="NONE", coach_id=None)
    for role in ("coordinator", "admin"):
        assert _names(session, make_user(session, now, role=role)) == {"A1", "NONE"}


def test_detail_lookup_outside_caseload_finds_nothing(session: Session, now: datetime) -> None:
    a = make_user(session, now)
    b = make_user(session, now)
    person = make_participant(session, now, coach_id=a.id)
    assert get_visible_participant(session, a, person.id) is person
    assert get_visible_participant(session, b, person.id) is None


def test_unknown_sender_flags_are_for_coordinators_only(session: Session, now: datetime) -> None:
    from bot.services.caseload import get_visible_flag

    coach = make_user(session, now)
    cora = make_user(session, now, role="coordinator")
    flag = raise_flag(
        session, reason="unknown_sender", severity="normal", now=now, sender_address="+13125550999"
    ).flag
    assert get_visible_flag(session, coach, flag.id) is None
    assert get_visible_flag(session, cora, flag.id) is flag
    assert session.scalars(select(Participant)).all() == []
