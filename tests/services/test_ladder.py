"""The ladder pages the assigned coach, then the covering coach, then the coordinators,
`ladder_minutes` apart, until someone acknowledges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.models import Flag, FlagEvent, OutboundMessage, Participant, User
from bot.services.flags import acknowledge_flag, raise_flag
from bot.services.ladder import advance_ladder, start_ladder
from tests.factories import make_participant, make_user

GAP = timedelta(minutes=15)


def _pages(session: Session) -> list[OutboundMessage]:
    return list(
        session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.purpose == "page")
            .order_by(OutboundMessage.id)
        )
    )


def _urgent_flag(session: Session, participant: Participant, now: datetime) -> Flag:
    return raise_flag(
        session, reason="crisis", severity="urgent", now=now, participant_id=participant.id
    ).flag


def test_urgent_flag_pages_coach_then_cover_then_coordinators_fifteen_minutes_apart(
    session: Session, now: datetime, config: Config
) -> None:
    cover = make_user(session, now, name="Dana Cover")
    coach = make_user(session, now, name="Marcus Coach", covering_user_id=cover.id)
    boss = make_user(session, now, role="coordinator")
    participant = make_participant(session, now, coach_id=coach.id)
    flag = _urgent_flag(session, participant, now)
    for minutes in (0, 14, 15, 30):
        advance_ladder(session, now + timedelta(minutes=minutes), config)
    pages = _pages(session)
    assert [(p.user_id, p.created_at - now) for p in pages] == [
        (coach.id, timedelta(0)),
        (cover.id, GAP),
        (boss.id, 2 * GAP),
    ]
    assert all(p.ignore_quiet_hours and p.send_after == p.created_at for p in pages)
    assert (flag.ladder_step, flag.next_page_at) == (3, now + 3 * GAP)


def test_acknowledgement_stops_the_pages(session: Session, now: datetime, config: Config) -> None:
    coach = make_user(session, now)
    make_user(session, now, role="coordinator")
    participant = make_participant(session, now, coach_id=coach.id)
    flag = _urgent_flag(session, participant, now)
    advance_ladder(session, now, config)
    acknowledge_flag(session, flag, user_id=coach.id, now=now + timedelta(minutes=3))
    for minutes in range(15, 120, 15):
        advance_ladder(session, now + timedelta(minutes=minutes), config)
    assert [p.user_id for p in _pages(session)] == [coach.id]


def test_away_coach_is_covered_at_once_and_coordinators_come_next(
    session: Session, now: datetime, config: Config
) -> None:
    cover = make_user(session, now)
    coach = make_user(session, now, away=True, covering_user_id=cover.id)
    boss = make_user(session, now, role="coordinator")
    participant = make_participant(session, now, coach_id=coach.id)
    _urgent_flag(session, participant, now)
    advance_ladder(session, now, config)
    advance_ladder(session, now + GAP, config)
    assert [p.user_id for p in _pages(session)] == [cover.id, boss.id]


def test_people_without_a_phone_are_skipped_with_an_event_and_the_next_step_goes_at_once(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now, phone=None)
    boss = make_user(session, now, role="coordinator")
    phoneless_boss = make_user(session, now, role="coordinator", phone=None)
    participant = make_participant(session, now, coach_id=coach.id)
    flag = _urgent_flag(session, participant, now)
    advance_ladder(session, now, config)
    assert [p.user_id for p in _pages(session)] == [boss.id]
    skipped = session.scalars(
        select(FlagEvent.detail)
        .where(FlagEvent.flag_id == flag.id, FlagEvent.kind == "page_skipped")
        .order_by(FlagEvent.id)
    ).all()
    assert [d["user_id"] for d in skipped if d and "user_id" in d] == [
        coach.id,
        phoneless_boss.id,
    ]
    assert any(d and d.get("ladder_step") == "covering_coach" for d in skipped)


def test_high_flag_in_quiet_hours_waits_for_morning_and_the_next_step_counts_from_then(
    session: Session, config: Config
) -> None:
    night = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 23:00 in New York
    morning = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)  # 08:00 EST
    coach = make_user(session, night)
    participant = make_participant(session, night, coach_id=coach.id)
    flag = raise_flag(
        session, reason="delivery_failed", severity="high", now=night, participant_id=participant.id
    ).flag
    advance_ladder(session, night, config)
    [page] = _pages(session)
    assert page.send_after == morning and not page.ignore_quiet_hours
    assert flag.next_page_at == morning + GAP


def test_normal_and_info_flags_never_page(session: Session, now: datetime, config: Config) -> None:
    coach = make_user(session, now)
    participant = make_participant(session, now, coach_id=coach.id)
    for reason, severity in (("no_reply", "normal"), ("opted_out", "info")):
        raise_flag(
            session, reason=reason, severity=severity, now=now, participant_id=participant.id
        )
    assert advance_ladder(session, now, config).pages == 0
    assert _pages(session) == []


def test_page_names_only_the_severity_and_a_link(
    session: Session, now: datetime, config: Config
) -> None:
    coach = make_user(session, now)
    participant = make_participant(session, now, coach_id=coach.id, first_name="Sam")
    flag = _urgent_flag(session, participant, now)
    advance_ladder(session, now, config)
    [page] = _pages(session)
    assert "urgent" in page.body and f"https://checkin.example.org/flags/{flag.id}" in page.body
    assert "crisis" not in page.body.lower()


def test_ladder_started_by_inbound_continues_with_the_next_step(
    session: Session, now: datetime, config: Config
) -> None:
    cover = make_user(session, now)
    coach = make_user(session, now, covering_user_id=cover.id)
    participant = make_participant(session, now, coach_id=coach.id)
    flag = _urgent_flag(session, participant, now)
    start_ladder(session, flag, now, config)
    advance_ladder(session, now + timedelta(minutes=5), config)  # not due yet
    advance_ladder(session, now + GAP, config)
    assert [p.user_id for p in _pages(session)] == [coach.id, cover.id]


# --- property: pages go in ladder order, one step per interval, and stop at acknowledgement ---


def _wipe(session: Session) -> None:
    session.rollback()
    for model in (OutboundMessage, FlagEvent, Flag, Participant):
        session.execute(delete(model))
    session.execute(delete(User))
    session.commit()


def _expected_rounds(
    coach: User | None, cover: User | None, coordinators: list[User], rounds: int
) -> list[list[int]]:
    """The oracle, written from DESIGN.md without the implementation: each advance pages the
    next non-empty group; after the last group it repeats."""
    groups: list[list[int]] = []
    first: User | None = None
    if coach is not None:
        # An away coach is covered at step 1; with nobody covering, the coach is still paged.
        first = cover if coach.away and cover is not None else coach
    if first is not None and first.phone:
        groups.append([first.id])
    if coach is not None and cover is not None and cover is not first and cover.phone:
        groups.append([cover.id])
    reachable = [u.id for u in coordinators if u.phone]
    if reachable:
        groups.append(reachable)
        # The last step repeats until someone acknowledges.
        return [groups[min(i, len(groups) - 1)] for i in range(rounds)]
    return groups[:rounds]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    has_coach=st.booleans(),
    coach_phone=st.booleans(),
    coach_away=st.booleans(),
    has_cover=st.booleans(),
    cover_phone=st.booleans(),
    coordinator_phones=st.lists(st.booleans(), max_size=3),
    ack_after=st.integers(min_value=0, max_value=6),
)
def test_ladder_pages_in_order_and_stops_at_acknowledgement(
    session: Session,
    now: datetime,
    config: Config,
    has_coach: bool,
    coach_phone: bool,
    coach_away: bool,
    has_cover: bool,
    cover_phone: bool,
    coordinator_phones: list[bool],
    ack_after: int,
) -> None:
    _wipe(session)
    cover = make_user(session, now, phone=None if not cover_phone else "+12025550999")
    cover = cover if has_cover else None
    coach = None
    if has_coach:
        coach = make_user(
            session,
            now,
            phone="+12025550998" if coach_phone else None,
            away=coach_away,
            covering_user_id=cover.id if cover else None,
        )
    coordinators = [
        make_user(session, now, role="coordinator", phone=f"+1202555097{i}" if has else None)
        for i, has in enumerate(coordinator_phones)
    ]
    participant = make_participant(session, now, coach_id=coach.id if coach else None)
    flag = _urgent_flag(session, participant, now)
    acknowledger = make_user(session, now, role="admin")
    session.commit()

    at = now
    for _ in range(ack_after):
        advance_ladder(session, at, config)
        if flag.next_page_at is None:
            break
        assert flag.next_page_at == at + GAP
        at = flag.next_page_at
    acknowledge_flag(session, flag, user_id=acknowledger.id, now=at)
    for minutes in range(0, 90, 15):
        advance_ladder(session, at + timedelta(minutes=minutes), config)
    session.commit()

    rounds: dict[datetime, list[int]] = {}
    for page in _pages(session):
        assert page.user_id is not None
        rounds.setdefault(page.created_at, []).append(page.user_id)
    actual = [rounds[key] for key in sorted(rounds)]
    expected = _expected_rounds(coach, cover, coordinators, ack_after)
    # In order, one step per interval, and nothing after the acknowledgement.
    assert actual == expected
