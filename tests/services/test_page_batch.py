"""Many flags for one coach in one ladder pass become one page that counts them; a step that
reaches nobody is recorded for the dashboard's banner (issue 17.8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import FlagEvent, OutboundMessage
from bot.services.flags import raise_flag
from bot.services.ladder import advance_ladder
from tests.factories import make_participant, make_user


def _pages(session: Session) -> list[OutboundMessage]:
    return list(session.scalars(select(OutboundMessage).where(OutboundMessage.purpose == "page")))


def test_twenty_failed_deliveries_for_one_coach_make_one_page_that_counts_them(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now)
    other = make_user(session, now)
    flags = [
        raise_flag(
            session,
            reason="delivery_failed",
            now=now,
            participant_id=make_participant(session, now, coach_id=coach.id).id,
        ).flag
        for _ in range(20)
    ]
    lone = raise_flag(
        session,
        reason="delivery_failed",
        now=now,
        participant_id=make_participant(session, now, coach_id=other.id, first_name="Ana").id,
    ).flag
    advance_ladder(session, now, config)
    pages = {page.user_id: page for page in _pages(session)}
    assert set(pages) == {coach.id, other.id}
    together = pages[coach.id]
    assert "and 19 more" in together.body and together.body.endswith(f"{config.public_base_url}/")
    assert "Ana" in pages[other.id].body and f"/flags/{lone.id}" in pages[other.id].body
    paged = session.scalars(
        select(FlagEvent.flag_id).where(
            FlagEvent.kind == "paged",
            FlagEvent.detail["outbound_message_id"].as_integer() == together.id,
        )
    ).all()
    assert sorted(paged) == sorted(f.id for f in flags)


def test_a_step_with_nobody_to_text_is_recorded_as_reaching_nobody(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now, phone=None)
    participant = make_participant(session, now, coach_id=coach.id)
    flag = raise_flag(session, reason="crisis", now=now, participant_id=participant.id).flag
    advance_ladder(session, now, config)
    kinds = session.scalars(select(FlagEvent.kind).where(FlagEvent.flag_id == flag.id)).all()
    assert "nobody_reached" in kinds
    assert _pages(session) == []
