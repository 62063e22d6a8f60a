"""Time sweep(now) on PostgreSQL: 100,000 participants, 5,000 expectations due (issue 6).

    .venv/bin/python bench/sweep.py [--server postgresql+psycopg://postgres@127.0.0.1:5432]
                                   [--participants 100000] [--due 5000] [--runs 5]

Creates a scratch database with a unique name, migrates it, bulk-loads it with COPY, then
times several sweeps (the due expectations are put back to pending between runs, outside the
timed part), prints the wall time of each run, and drops the database.

The data is shaped like a program three months in: every participant has three old check-ins
with decided expectations (history the sweep must not pay for), 20,000 recent check-ins wait
for replies that are not due yet, 500 were sent in the last minute and have no expectation yet
(the sweep makes them), and `--due` check-ins are past their reply window. 2% of the due ones
belong to someone with an open `no_reply` flag, which their miss is counted on (their earlier
check-ins were answered, so it stays normal and nobody is paged).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from scratch import database_name, scratch_database
from sqlalchemy import text

from bot.config import Config
from bot.db import make_engine, make_session_factory, upgrade_to_head
from scheduler.sweep import sweep

NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
COACHES = 20


def _copy(raw: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
        count += 1
    buffer.seek(0)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while chunk := buffer.read(1 << 20):
            copy.write(chunk)
    return count


def load(url: str, participants: int, due: int) -> dict[str, int]:
    engine = make_engine(url)
    raw = engine.raw_connection()
    dbapi = raw.driver_connection
    t = NOW.isoformat()
    users = [
        (i, f"coach{i}@example.org", f"Coach {i}", f"+1202555{i:04d}", "coach", "x", t)
        for i in range(1, COACHES + 1)
    ] + [
        (
            COACHES + i,
            f"lead{i}@example.org",
            f"Lead {i}",
            f"+1203555{i:04d}",
            "coordinator",
            "x",
            t,
        )
        for i in range(1, 4)
    ]
    _copy(
        dbapi,
        "users",
        ("id", "email", "name", "phone", "role", "password_hash", "created_at"),
        users,
    )
    _copy(
        dbapi,
        "participants",
        (
            "id",
            "external_id",
            "first_name",
            "phone",
            "channel",
            "timezone",
            "language",
            "release_date",
            "coach_id",
            "status",
            "enrolled_at",
            "plan_version",
            "created_at",
            "updated_at",
        ),
        (
            (
                i,
                f"B-{i:06d}",
                f"Person{i}",
                f"+1{300 + i // 10000}555{i % 10000:04d}",
                "sms",
                "America/New_York",
                "en",
                "2026-03-01",
                1 + i % COACHES,
                "active",
                t,
                1,
                t,
                t,
            )
            for i in range(1, participants + 1)
        ),
    )

    messages: list[tuple[Any, ...]] = []
    expectations: list[tuple[Any, ...]] = []

    def add(pid: int, sent: datetime, state: str | None, window: timedelta) -> None:
        mid = len(messages) + 1
        s = sent.isoformat()
        messages.append(
            (mid, f"checkin:{mid}", pid, "checkin", "sms", f"+1{pid}", "Hi", "sent", s, s, s)
        )
        if state is not None:
            resolved = (sent + window).isoformat() if state != "pending" else None
            expectations.append(
                (
                    len(expectations) + 1,
                    pid,
                    "reply",
                    mid,
                    s,
                    (sent + window).isoformat(),
                    state,
                    resolved,
                )
            )

    window = timedelta(hours=48)
    for pid in range(1, participants + 1):  # history: decided long ago
        for weeks in (4, 3, 2):
            add(pid, NOW - timedelta(weeks=weeks), "satisfied" if pid % 5 else "missed", window)
    step = max(participants // 20000, 1)
    for k, pid in enumerate(range(1, participants + 1, step)):  # waiting, not due yet
        if k >= 20000:
            break
        add(pid, NOW - timedelta(hours=1 + k % 40), "pending", window)
    due_pids = list(range(2, participants + 1, max(participants // due, 1)))[:due]
    for k, pid in enumerate(due_pids):  # past the reply window
        add(pid, NOW - window - timedelta(minutes=1 + k % 600), "pending", window)
    for k in range(500):  # just sent; the sweep makes their expectations
        add(3 + k * 7, NOW - timedelta(seconds=30), None, window)

    _copy(
        dbapi,
        "outbound_messages",
        (
            "id",
            "idempotency_key",
            "participant_id",
            "purpose",
            "channel",
            "to_address",
            "body",
            "status",
            "send_after",
            "created_at",
            "sent_at",
        ),
        messages,
    )
    _copy(
        dbapi,
        "expectations",
        (
            "id",
            "participant_id",
            "kind",
            "outbound_message_id",
            "created_at",
            "due_at",
            "state",
            "resolved_at",
        ),
        expectations,
    )
    # 2% of the due people already have an open no_reply flag from a miss the week before.
    repeat = due_pids[::50]
    _copy(
        dbapi,
        "flags",
        (
            "id",
            "participant_id",
            "reason",
            "severity",
            "state",
            "occurrences",
            "opened_at",
            "updated_at",
        ),
        (
            (i + 1, pid, "no_reply", "normal", "open", 1, (NOW - timedelta(days=7)).isoformat(), t)
            for i, pid in enumerate(repeat)
        ),
    )
    with dbapi.cursor() as cur:
        for table in ("users", "participants", "outbound_messages", "expectations", "flags"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
    dbapi.commit()
    raw.close()
    engine.dispose()
    return {
        "participants": participants,
        "messages": len(messages),
        "expectations": len(expectations),
        "due": len(due_pids),
        "open_flags": len(repeat),
    }


def snapshot(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        marks = {
            table: conn.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}")) or 0
            for table in ("expectations", "flags", "flag_events", "outbound_messages")
        }
    engine.dispose()
    return marks


def reset(url: str, marks: dict[str, int]) -> None:
    """Put the database back as it was loaded (not timed)."""
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        # No foreign-key checks while undoing the run: deleting thousands of flags would check
        # expectations.flag_id (unindexed; nothing deletes flags in the program) per row.
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text("DELETE FROM flag_events"))
        conn.execute(text("DELETE FROM expectations WHERE id > :m"), {"m": marks["expectations"]})
        conn.execute(
            text(
                "UPDATE expectations SET state = 'pending', resolved_at = NULL, flag_id = NULL "
                "WHERE resolved_at = :now"
            ),
            {"now": NOW},
        )
        conn.execute(
            text("DELETE FROM outbound_messages WHERE id > :m"), {"m": marks["outbound_messages"]}
        )
        conn.execute(text("DELETE FROM flags WHERE id > :m"), {"m": marks["flags"]})
        conn.execute(
            text(
                "UPDATE flags SET severity = 'normal', occurrences = 1, ladder_step = 0, "
                "next_page_at = NULL"
            )
        )
        conn.execute(text("SET session_replication_role = DEFAULT"))
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with scratch_database(args.server, "checkin_bench_sweep") as url:
        name = database_name(url)
        started = time.perf_counter()
        upgrade_to_head(url)
        sizes = load(url, args.participants, args.due)
        print(f"loaded {sizes} in {time.perf_counter() - started:.1f} s (database {name})")
        marks = snapshot(url)
        reset(url, marks)
        config = Config(
            database_url=url,
            database_url_explicit=True,
            secret_key="bench",
            public_base_url="https://checkin.example.org",
            testing=True,
        )
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        times = []
        for run in range(1, args.runs + 1):
            with sessions() as session:
                begin = time.perf_counter()
                counts = sweep(session, NOW, config)
                elapsed = time.perf_counter() - begin
            times.append(elapsed)
            print(
                f"run {run}: {elapsed * 1000:.0f} ms  (created {counts.created}, missed "
                f"{counts.missed}, flags opened {counts.flags_opened}, raised "
                f"{counts.flags_raised}, pages {counts.pages})"
            )
            reset(url, marks)
        engine.dispose()
        print(
            f"sweep wall time over {args.runs} runs: median {statistics.median(times) * 1000:.0f} ms, "
            f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
            f"(target < 1000 ms)"
        )
    print(f"dropped {name}")


if __name__ == "__main__":
    main()
