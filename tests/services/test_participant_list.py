"""The participants list a coach works from (issue 18.4): full names, coach, days since
release, the last message either way, open flags by severity; filters and sorts in SQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from bot.models import InboundMessage, User
from bot.services import participant_list as plist
from bot.services.delivery_errors import describe_error
from bot.services.flags import raise_flag
from tests.factories import make_participant, make_sent_message, make_user


def _inbound(session: Session, participant_id: int, body: str, at: datetime) -> None:
    session.add(
        InboundMessage(
            message_sid=f"SM{participant_id}{at.timestamp():.0f}",
            from_address="+13125550000",
            to_address="+15550100999",
            channel="sms",
            body=body,
            raw_form={},
            participant_id=participant_id,
            received_at=at,
            processing_state="processed",
        )
    )
    session.flush()


def _world(session: Session, now: datetime) -> dict[str, int]:
    coach = make_user(session, now, name="Marcus Lee")
    other = make_user(session, now, name="Ana Ortiz")
    dana = make_participant(
        session,
        now,
        first_name="Dana",
        last_name="Reyes",
        coach_id=coach.id,
        release_date=date(2026, 2, 20),
    )
    ana = make_participant(
        session,
        now,
        first_name="Ana",
        coach_id=other.id,
        language="es",
        release_date=date(2026, 3, 5),
    )
    quiet = make_participant(session, now, first_name="Bo", coach_id=coach.id, status="closed")
    make_sent_message(session, dana, now - timedelta(days=3))
    _inbound(session, dana.id, "Can you call me?\nI lost my job", now - timedelta(hours=2))
    make_sent_message(session, ana, now - timedelta(hours=1), body="Hi Ana, checking in")
    # A cancelled text never reached anyone: it is not the last contact.
    never = make_sent_message(session, ana, now, status="cancelled", body="never sent")
    never.sent_at = None
    raise_flag(session, reason="crisis", now=now, participant_id=dana.id)
    raise_flag(session, reason="no_reply", now=now, participant_id=dana.id)
    raise_flag(session, reason="opted_out", now=now, participant_id=dana.id)
    session.commit()
    return {"coach": coach.id, "other": other.id, "dana": dana.id, "ana": ana.id, "bo": quiet.id}


def test_rows_show_full_name_coach_release_days_last_message_and_flags_by_severity(
    session: Session, now: datetime
) -> None:
    ids = _world(session, now)
    admin = make_user(session, now, role="admin")
    page = plist.list_participants(session, admin, now=now)
    rows = {r.id: r for r in page.rows}
    dana = rows[ids["dana"]]
    assert (dana.display_name, dana.coach_name, dana.days_since_release) == (
        "Dana Reyes",
        "Marcus Lee",
        10,
    )
    assert dana.release_label == "10 days"
    assert dana.last == plist.LastMessage("in", "Can you call me?", now - timedelta(hours=2))
    assert list(dana.flags.items()) == [("urgent", 1), ("normal", 1), ("info", 1)]
    ana = rows[ids["ana"]]
    assert ana.last is not None and (ana.last.direction, ana.last.first_line) == (
        "out",
        "Hi Ana, checking in",
    )
    assert ana.release_label == "due in 3 days"
    assert rows[ids["bo"]].last is None


def test_filter_by_coach_and_state_and_sort_by_last_contact(
    session: Session, now: datetime
) -> None:
    ids = _world(session, now)
    admin = make_user(session, now, role="coordinator")

    def names(q: str = "", state: str = "", coach: str = "", sort: str = "name") -> list[str]:
        page = plist.list_participants(
            session, admin, now=now, q=q, state=state, coach=coach, sort=sort
        )
        return [r.display_name for r in page.rows]

    assert names() == ["Ana", "Bo", "Dana Reyes"]
    assert names(coach=str(ids["coach"])) == ["Bo", "Dana Reyes"]
    assert names(state="closed") == ["Bo"]
    assert names(state="flagged") == ["Dana Reyes"]
    assert names(q="reyes") == ["Dana Reyes"]
    assert names(sort="recent") == ["Ana", "Dana Reyes", "Bo"]
    assert names(sort="quiet") == ["Bo", "Dana Reyes", "Ana"]
    assert names(coach=plist.NO_COACH) == []


def test_a_coach_lists_only_their_caseload(session: Session, now: datetime) -> None:
    ids = _world(session, now)
    coach = session.get(User, ids["coach"])
    assert coach is not None
    page = plist.list_participants(session, coach, now=now)
    assert {r.id for r in page.rows} == {ids["dana"], ids["bo"]}
    assert plist.coach_filter_choices(session, coach) == [(str(ids["coach"]), "Marcus Lee")]


def test_delivery_error_codes_are_said_in_words_with_the_code() -> None:
    assert describe_error(30003) == "phone unreachable: off or out of service (30003)"
    assert describe_error(21614) == "not a mobile number: it cannot receive texts (21614)"
    assert describe_error(12345) == "error 12345"
    assert describe_error(None) == ""
