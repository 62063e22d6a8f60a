"""bot.bulk: set-based inserts."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.bulk import in_ids, insert_ignoring_conflicts
from bot.models import OutboundMessage


def _row(now: datetime, key: str, to: str) -> dict[str, object]:
    return {
        "idempotency_key": key,
        "purpose": "reply",  # to a number nobody enrolled: no participant or user needed
        "channel": "sms",
        "to_address": to,
        "body": 'héllo, "quoted" \\ ✓',
        "segments": 1,
        "status": "pending",
        "attempts": 0,
        "send_after": now,
        "ignore_quiet_hours": True,
        "created_at": now,
    }


def test_rows_go_in_once_and_exactly_as_given(session: Session, now: datetime) -> None:
    table = OutboundMessage.__table__
    assert isinstance(table, Table)
    rows = [_row(now, "k1", "+13125550001"), _row(now, "k2", "+13125550002")]
    assert insert_ignoring_conflicts(session, table, rows) == 2
    assert insert_ignoring_conflicts(session, table, rows) == 0  # conflicts are skipped
    stored = session.execute(select(OutboundMessage.to_address, OutboundMessage.body)).all()
    assert sorted(stored) == [("+13125550001", rows[0]["body"]), ("+13125550002", rows[1]["body"])]


@pytest.mark.postgres_only  # SQLite does not enforce VARCHAR lengths at all
def test_a_value_longer_than_its_column_is_refused_not_cut(session: Session, now: datetime) -> None:
    table = OutboundMessage.__table__
    assert isinstance(table, Table)
    with pytest.raises(DBAPIError):
        insert_ignoring_conflicts(session, table, [_row(now, "k3", "+1" + "3" * 60)])


def test_columns_equal_in_every_row_and_columns_mixing_none_go_in_as_given(
    session: Session, now: datetime
) -> None:
    table = OutboundMessage.__table__
    assert isinstance(table, Table)
    rows = [
        _row(now, "k4", "+13125550004") | {"not_after": None, "claimed_by": None},
        _row(now, "k5", "+13125550005") | {"not_after": None, "claimed_by": "w1"},
        _row(now, "k6", "+13125550006") | {"not_after": None, "claimed_by": None},
    ]
    assert insert_ignoring_conflicts(session, table, rows) == 3
    stored = session.execute(
        select(
            OutboundMessage.idempotency_key,
            OutboundMessage.not_after,
            OutboundMessage.claimed_by,
            OutboundMessage.send_after,
            OutboundMessage.ignore_quiet_hours,
        ).order_by(OutboundMessage.idempotency_key)
    ).all()
    assert [tuple(r) for r in stored] == [
        ("k4", None, None, now, True),
        ("k5", None, "w1", now, True),
        ("k6", None, None, now, True),
    ]


def test_whole_number_and_boolean_columns_go_in_as_given(session: Session, now: datetime) -> None:
    # On PostgreSQL whole numbers travel in an array's text form, booleans in the binary one.
    table = OutboundMessage.__table__
    assert isinstance(table, Table)
    rows = [
        _row(now, "k7", "+13125550007") | {"segments": 2_147_483_647, "ignore_quiet_hours": True},
        _row(now, "k8", "+13125550008") | {"segments": 0, "ignore_quiet_hours": False},
        _row(now, "k9", "+13125550009") | {"segments": 7, "ignore_quiet_hours": True},
    ]
    assert insert_ignoring_conflicts(session, table, rows) == 3
    stored = session.execute(
        select(
            OutboundMessage.idempotency_key,
            OutboundMessage.segments,
            OutboundMessage.ignore_quiet_hours,
        ).order_by(OutboundMessage.idempotency_key)
    ).all()
    assert [tuple(r) for r in stored] == [
        ("k7", 2_147_483_647, True),
        ("k8", 0, False),
        ("k9", 7, True),
    ]


def test_ids_with_none_select_only_the_given_rows(session: Session, now: datetime) -> None:
    table = OutboundMessage.__table__
    assert isinstance(table, Table)
    rows = [_row(now, f"n{i}", f"+1312555010{i}") for i in range(3)]
    insert_ignoring_conflicts(session, table, rows)
    ids = sorted(session.scalars(select(OutboundMessage.id)))
    wanted = [ids[0], None, ids[2]]
    found = session.scalars(
        select(OutboundMessage.id).where(in_ids(session, OutboundMessage.id, wanted))
    ).all()
    assert sorted(found) == [ids[0], ids[2]]
