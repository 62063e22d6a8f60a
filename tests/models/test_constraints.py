"""Constraints live in the database, not only in Python."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import Flag
from tests.factories import make_participant, make_user


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE users SET role = 'superuser'",
        "UPDATE participants SET status = 'gone'",
        "UPDATE participants SET language = 'fr'",
        "UPDATE participants SET channel = 'pager'",
        "UPDATE participants SET phone = '2025550100'",
    ],
)
def test_check_constraints_refuse_words_outside_the_vocabulary(
    session: Session, now: datetime, statement: str
) -> None:
    make_user(session, now)
    make_participant(session, now)
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(text(statement))
        session.flush()
    session.rollback()


def test_external_id_and_phone_are_unique(session: Session, now: datetime) -> None:
    make_participant(session, now, external_id="U-1", phone="+12025550170")
    session.commit()
    with pytest.raises(IntegrityError):
        make_participant(session, now, external_id="U-1", phone="+12025550171")
    session.rollback()
    with pytest.raises(IntegrityError):
        make_participant(session, now, external_id="U-2", phone="+12025550170")
    session.rollback()


def test_database_allows_one_unresolved_flag_per_participant_and_reason(
    session: Session, now: datetime
) -> None:
    participant = make_participant(session, now)
    first = Flag(
        participant_id=participant.id,
        reason="no_reply",
        severity="normal",
        opened_at=now,
        updated_at=now,
    )
    session.add(first)
    session.commit()
    session.add(
        Flag(
            participant_id=participant.id,
            reason="no_reply",
            severity="high",
            opened_at=now,
            updated_at=now,
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    first.state = "resolved"
    session.add(
        Flag(
            participant_id=participant.id,
            reason="no_reply",
            severity="high",
            opened_at=now,
            updated_at=now,
        )
    )
    session.commit()  # a resolved flag does not block a new one


def test_naive_datetimes_are_refused(session: Session, now: datetime) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        make_participant(session, now.replace(tzinfo=None))
    session.rollback()
