"""A ladder step that reached nobody shows as a banner to coordinators and admins until someone
acknowledges the flag (issue 17.8)."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.services.flags import raise_flag
from bot.services.ladder import advance_ladder
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import login, post


def test_a_flag_that_reached_nobody_is_a_banner_until_acknowledged(
    app: Flask, sessions: sessionmaker[Session], now: datetime, config: Config
) -> None:
    with sessions.begin() as session:
        make_user(session, now, email="coord@example.org", role="coordinator", phone=None)
        make_user(session, now, email="coach@example.org", role="coach")
        participant = make_participant(session, now)  # no coach; the coordinator has no phone
        flag = raise_flag(session, reason="crisis", now=now, participant_id=participant.id).flag
        advance_ladder(session, now, config)
        flag_id = flag.id
    coordinator = app.test_client()
    login(coordinator, "coord@example.org")
    page = coordinator.get("/participants").get_data(as_text=True)
    assert "unreached-banner" in page and f'href="/flags/{flag_id}"' in page
    coach = app.test_client()
    login(coach, "coach@example.org")
    assert "unreached-banner" not in coach.get("/").get_data(as_text=True)
    assert post(coordinator, f"/flags/{flag_id}/acknowledge").status_code in (302, 303)
    assert "unreached-banner" not in coordinator.get("/participants").get_data(as_text=True)
