"""The sender's hot queries find their rows by an index on both databases, whatever the size
of the tables: a partial index serves a query only if the database can prove the query's
WHERE implies the index's (PostgreSQL proves `status = 'pending'` implies `status IN
('pending', 'sending')`; SQLite does not, and then scans the whole outbox, every text ever
sent, at every claim). Checked on the plan, not by timing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Select, select, text
from sqlalchemy.engine import Connection

from bot.models import OutboundMessage, Participant, PlannedContact
from bot.models.messages import URGENT_PENDING
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW
M, C = OutboundMessage, PlannedContact

# The WHERE and ORDER BY of bot/services/outbox/claims.py's claim_batch and recover_stale and
# scheduler/enqueue.py's due_contacts (the columns read do not change the access path).
HOT_QUERIES: dict[str, tuple[Select[Any], str]] = {
    "claim": (
        select(M.id)
        .where(M.status == "pending", M.send_after <= NOW)
        .order_by(M.send_after, M.id)
        .limit(4000),
        "outbound_messages",
    ),
    # The urgent lane's poll and claim (urgent_due, claim_batch(urgent_only=True)).
    "urgent_claim": (
        select(M.id)
        .where(text(URGENT_PENDING))
        .where(M.send_after <= NOW)
        .order_by(M.send_after, M.id)
        .limit(40),
        "outbound_messages",
    ),
    "recover_stale": (
        select(M.id).where(M.status == "sending", M.claimed_at < NOW - timedelta(minutes=5)),
        "outbound_messages",
    ),
    "due_contacts": (
        select(C.id)
        .join(Participant, Participant.id == C.participant_id)
        .where(C.state == "planned", C.send_after <= NOW)
        .order_by(C.send_after)
        .limit(2000),
        "planned_contacts",
    ),
}


def _plan(conn: Connection, query: Select[Any]) -> str:
    dialect = conn.dialect
    if dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # empty tables: show the index
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))
    # SQLite: with bound parameters, as the code runs it.
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    values = tuple(
        value.isoformat(" ") if hasattr(value, "isoformat") else value
        for value in (params[name] for name in compiled.positiontup or ())
    )
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), values)
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("name", sorted(HOT_QUERIES))
def test_the_senders_hot_queries_read_their_rows_by_an_index(engine: Engine, name: str) -> None:
    query, table = HOT_QUERIES[name]
    with engine.begin() as conn:
        plan = _plan(conn, query)
    if engine.dialect.name == "postgresql":
        assert f"Seq Scan on {table}" not in plan, plan
    else:
        assert f"SCAN {table}" not in plan, plan
