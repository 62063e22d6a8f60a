from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import Flag, FlagEvent, OutboundMessage
from bot.services.flags import raise_flag
from bot.services.ladder import start_ladder
from bot.services.paging import page_user
from tests.factories import make_participant, make_user


def _flag(session: Session, now: datetime, severity: str = "urgent", **kwargs: int) -> Flag:
    return raise_flag(session, reason="crisis", severity=severity, now=now, **kwargs).flag


def _events(session: Session, flag: Flag, kind: str) -> list[FlagEvent]:
    session.flush()
    return list(
        session.scalars(
            select(FlagEvent).where(FlagEvent.flag_id == flag.id, FlagEvent.kind == kind)
        )
    )


def test_a_page_is_neutral_and_links_the_flag(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now, phone="+12025550140")
    person = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    flag = _flag(session, now, participant_id=person.id)
    page = page_user(session, flag=flag, user=coach, step=1, now=now, config=config)
    assert page is not None
    assert page.body == (
        f"checkin: urgent flag for {person.label}. "
        f"Open the dashboard: https://checkin.example.org/flags/{flag.id}"
    )
    assert (page.purpose, page.to_address, page.user_id, page.status) == (
        "page",
        "+12025550140",
        coach.id,
        "pending",
    )
    assert len(_events(session, flag, "paged")) == 1


def test_urgent_pages_go_at_once_even_at_night(session: Session, config: Config) -> None:
    night = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 02:00 in New York
    coach = make_user(session, night)
    person = make_participant(session, night, coach_id=coach.id)
    flag = _flag(session, night, participant_id=person.id)
    page = page_user(session, flag=flag, user=coach, step=1, now=night, config=config)
    assert page is not None and page.send_after == night and page.ignore_quiet_hours


def test_high_pages_wait_for_the_morning(session: Session, config: Config) -> None:
    night = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 02:00 in New York
    coach = make_user(session, night)
    person = make_participant(session, night, coach_id=coach.id)
    flag = _flag(session, night, severity="high", participant_id=person.id)
    page = page_user(session, flag=flag, user=coach, step=1, now=night, config=config)
    assert page is not None and not page.ignore_quiet_hours
    assert page.send_after == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_paging_twice_enqueues_one_message(session: Session, now: datetime, config: Config) -> None:
    coach = make_user(session, now)
    person = make_participant(session, now, coach_id=coach.id)
    flag = _flag(session, now, participant_id=person.id)
    first = page_user(session, flag=flag, user=coach, step=1, now=now, config=config)
    second = page_user(session, flag=flag, user=coach, step=1, now=now, config=config)
    assert first is not None and second is not None and first.id == second.id
    assert len(session.scalars(select(OutboundMessage)).all()) == 1


def test_someone_without_a_phone_is_skipped_and_logged(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now, phone=None)
    person = make_participant(session, now, coach_id=coach.id)
    flag = _flag(session, now, participant_id=person.id)
    assert page_user(session, flag=flag, user=coach, step=1, now=now, config=config) is None
    assert session.scalars(select(OutboundMessage)).all() == []
    assert _events(session, flag, "page_skipped")[0].detail == {
        "step": 1,
        "user_id": coach.id,
        "why": "no phone",
    }


def test_the_ladder_starts_with_the_assigned_coach(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now)
    make_user(session, now, role="coordinator")
    person = make_participant(session, now, coach_id=coach.id)
    flag = _flag(session, now, participant_id=person.id)
    assert start_ladder(session, flag, now, config) == 1
    assert flag.ladder_step == 1 and flag.next_page_at == now + timedelta(minutes=15)
    assert [m.user_id for m in session.scalars(select(OutboundMessage))] == [coach.id]


def test_an_away_coach_hands_the_first_page_to_their_cover(
    session: Session, now: datetime, config: Config
) -> None:
    cover = make_user(session, now)
    coach = make_user(session, now, away=True, covering_user_id=cover.id)
    person = make_participant(session, now, coach_id=coach.id)
    flag = _flag(session, now, participant_id=person.id)
    start_ladder(session, flag, now, config)
    assert [m.user_id for m in session.scalars(select(OutboundMessage))] == [cover.id]
    assert flag.ladder_step == 1


def test_with_nobody_reachable_early_the_ladder_goes_on_at_once(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now, phone=None)
    first = make_user(session, now, role="coordinator")
    second = make_user(session, now, role="coordinator")
    make_user(session, now, role="coordinator", active=False)
    person = make_participant(session, now, coach_id=coach.id)
    flag = _flag(session, now, participant_id=person.id)
    assert start_ladder(session, flag, now, config) == 2
    # The last step repeats until someone acknowledges ("pages until someone answers").
    assert flag.ladder_step == 3 and flag.next_page_at == now + timedelta(minutes=15)
    paged = sorted(m.user_id for m in session.scalars(select(OutboundMessage)) if m.user_id)
    assert paged == sorted([first.id, second.id])
    skipped = _events(session, flag, "page_skipped")
    assert len(skipped) == 2  # the coach without a phone, and the empty covering step


def test_an_unknown_sender_in_crisis_reaches_the_coordinators(
    session: Session, now: datetime, config: Config
) -> None:
    coordinator = make_user(session, now, role="coordinator")
    flag = _flag(session, now, sender_address="+13125550100")
    start_ladder(session, flag, now, config)
    page = session.scalars(select(OutboundMessage)).one()
    assert page.user_id == coordinator.id
    assert "+1******0100" in page.body and "3125550100" not in page.body


def test_acknowledging_withdraws_a_page_held_for_the_morning(
    session: Session, config: Config
) -> None:
    from bot.services.flags import acknowledge_flag

    night = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 02:00 in New York
    coach = make_user(session, night)
    other = make_user(session, night, role="coordinator")
    person = make_participant(session, night, coach_id=coach.id)
    flag = _flag(session, night, severity="high", participant_id=person.id)
    held = page_user(session, flag=flag, user=coach, step=1, now=night, config=config)
    assert held is not None and held.status == "pending"
    acknowledge_flag(session, flag, user_id=other.id, now=night + timedelta(minutes=5))
    session.flush()
    session.refresh(held)
    assert held.status == "cancelled"
    assert [e.detail for e in _events(session, flag, "pages_withdrawn")] == [{"count": 1}]
