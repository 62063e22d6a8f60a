"""Dashboard page latency at scale (issue 7): the flagged queue and the conversation page, with
100,000 participants and 5,000,000 messages on PostgreSQL. Target: p95 under 100 ms.

    .venv/bin/python bench/dashboard_pages.py \
        [--server postgresql+psycopg://postgres@127.0.0.1:5432/postgres] \
        [--participants 100000] [--messages 5000000] [--requests 200] [--keep]

Creates a scratch database with a unique name on the server, migrates it, bulk-loads it with
INSERT ... SELECT generate_series (no Python loop), then times full requests through the Flask
app (routing, login session, caseload SQL, template rendering, the audit row) for a coach, a
coordinator, and the conversation page of random participants. Drops the database afterwards
unless --keep.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from scratch import database_name, scratch_database
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.config import Config
from bot.db import make_engine, upgrade_to_head
from bot.services.users import hash_password

PASSWORD = "bench password 123"
COACHES = 50
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def load(url: str, participants: int, messages: int) -> None:
    engine = make_engine(url)
    inbound = messages // 2
    outbound = messages - inbound
    password_hash = hash_password(PASSWORD)
    steps: list[tuple[str, str, dict[str, object]]] = [
        (
            "users",
            """
            INSERT INTO users (email, name, role, password_hash, active, failed_logins, away,
                               created_at)
            SELECT 'coach' || g || '@bench.example', 'Coach ' || g, 'coach', :hash, true, 0,
                   false, :now
            FROM generate_series(1, :coaches) g;
            """,
            {"hash": password_hash, "coaches": COACHES},
        ),
        (
            "coordinator",
            """
            INSERT INTO users (email, name, role, password_hash, active, failed_logins, away,
                               created_at)
            VALUES ('cora@bench.example', 'Cora Coordinator', 'coordinator', :hash, true, 0,
                    false, :now);
            """,
            {"hash": password_hash},
        ),
        (
            "participants",
            """
            INSERT INTO participants (external_id, first_name, phone, channel, timezone,
                language, release_date, coach_id, status, consent_at, consent_method,
                enrolled_at, plan_version, created_at, updated_at)
            SELECT 'B-' || lpad(g::text, 6, '0'),
                   (ARRAY['Sam','Maria','Luis','Jordan','Ana','Terrell','Keisha','Jose'])[1 + g % 8],
                   '+1312' || lpad(g::text, 7, '0'), 'sms',
                   (ARRAY['America/New_York','America/Chicago','America/Los_Angeles'])[1 + g % 3],
                   CASE WHEN g % 3 = 0 THEN 'es' ELSE 'en' END,
                   DATE '2026-01-01' + (g % 60), 1 + g % :coaches, 'active', :now, 'import',
                   :now, 1, :now, :now
            FROM generate_series(1, :n) g;
            """,
            {"n": participants, "coaches": COACHES},
        ),
        (
            "inbound_messages",
            """
            INSERT INTO inbound_messages (message_sid, from_address, to_address, channel, body,
                num_media, raw_form, participant_id, received_at, processing_state)
            SELECT 'SM' || lpad(g::text, 32, '0'), '+1312' || lpad((1 + g % :n)::text, 7, '0'),
                   '+15550100000', 'sms', 'Doing ok today, thanks for checking in #' || g, 0,
                   '{}'::json, 1 + g % :n,
                   :now - make_interval(secs => g * 7), 'processed'
            FROM generate_series(1, :m) g;
            """,
            {"n": participants, "m": inbound},
        ),
        (
            "outbound_messages",
            """
            INSERT INTO outbound_messages (idempotency_key, participant_id, purpose, channel,
                to_address, body, segments, ignore_quiet_hours, status, attempts, send_after,
                created_at, sent_at)
            SELECT 'bench:' || g, 1 + g % :n, 'checkin', 'sms',
                   '+1312' || lpad((1 + g % :n)::text, 7, '0'),
                   'Hi, this is your coach checking in. How are you doing today? #' || g, 1,
                   false, 'delivered', 1, :now - make_interval(secs => g * 7 + 3),
                   :now - make_interval(secs => g * 7 + 3), :now - make_interval(secs => g * 7 + 3)
            FROM generate_series(1, :m) g;
            """,
            {"n": participants, "m": outbound},
        ),
        (
            "flags (open)",
            """
            INSERT INTO flags (participant_id, reason, severity, state, occurrences, opened_at,
                               updated_at, ladder_step)
            SELECT p, (ARRAY['crisis','delivery_failed','no_reply','unconfirmed_appointment',
                             'opted_out'])[1 + p % 5],
                   (ARRAY['urgent','high','normal','normal','info'])[1 + p % 5],
                   CASE WHEN p % 4 = 0 THEN 'acknowledged' ELSE 'open' END, 1,
                   :now - make_interval(mins => p % 5000), :now, 0
            FROM generate_series(1, :n, 19) p;
            """,
            {"n": participants},
        ),
        (
            "flags (resolved)",
            """
            INSERT INTO flags (participant_id, reason, severity, state, occurrences, opened_at,
                               updated_at, resolved_at, outcome, ladder_step)
            SELECT 1 + (g * 7) % :n, 'no_reply', 'normal', 'resolved', 1,
                   :now - make_interval(days => 1 + g % 60), :now,
                   :now - make_interval(days => g % 60), 'reached', 0
            FROM generate_series(1, 50000) g;
            """,
            {"n": participants},
        ),
    ]
    for name, sql, params in steps:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(sql), {"now": NOW, **params})
        print(f"  loaded {name:<18} in {time.perf_counter() - started:6.1f} s", flush=True)
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    print(f"  vacuum analyze            in {time.perf_counter() - started:6.1f} s", flush=True)
    engine.dispose()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def measure(name: str, count: int, request: Callable[[int], int]) -> None:
    timings = []
    request(0)  # warm-up: template compilation, connection pool
    for i in range(count):
        started = time.perf_counter()
        status = request(i)
        timings.append((time.perf_counter() - started) * 1000)
        assert status == 200, f"{name}: HTTP {status}"
    print(
        f"{name:<34} n={count:<4} p50={statistics.median(timings):6.1f} ms  "
        f"p95={percentile(timings, 95):6.1f} ms  max={max(timings):6.1f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="NAME", help="time an already loaded (--keep) database")
    args = parser.parse_args()

    server = make_url(args.server)
    if args.reuse:
        reused = server.set(database=args.reuse).render_as_string(hide_password=False)
        upgrade_to_head(reused)
        run_requests(reused, args.participants, args.requests)
        return
    with scratch_database(args.server, "checkin_bench_dashboard", keep=args.keep) as url:
        name = database_name(url)
        print(
            f"scratch database {name}: {args.participants:,} participants, {args.messages:,} messages"
        )
        upgrade_to_head(url)
        load(url, args.participants, args.messages)
        run_requests(url, args.participants, args.requests)
        if args.keep:
            print(f"kept {name}")


def run_requests(url: str, participants: int, count: int) -> None:
    import re

    from bot import create_app
    from bot.transport.simulated import SimulatedTransport

    config = Config(database_url=url, database_url_explicit=True, secret_key="bench", testing=True)
    app = create_app(config, SimulatedTransport())

    def client_for(email: str):  # type: ignore[no-untyped-def]
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match
        response = client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": match.group(1)}
        )
        assert response.status_code == 302, response.status_code
        return client

    coach = client_for("coach2@bench.example")
    cora = client_for("cora@bench.example")
    rng = random.Random(7)
    # Coach 2's caseload: participants with 1 + id % 50 == 2.
    caseload = [p for p in range(1, participants + 1) if 1 + p % COACHES == 2]

    measure("queue / (coach, 2,000 people)", count, lambda i: coach.get("/").status_code)
    measure("queue / (coordinator, everyone)", count, lambda i: cora.get("/").status_code)
    measure("queue JSON /api/queue (coach)", count, lambda i: coach.get("/api/queue").status_code)
    measure(
        "conversation /participants/<id>",
        count,
        lambda i: coach.get(f"/participants/{rng.choice(caseload)}").status_code,
    )
    measure(
        "conversation (coordinator, anyone)",
        count,
        lambda i: cora.get(f"/participants/{rng.randint(1, participants)}").status_code,
    )
    measure(
        "participants search ?q=term (coach)",
        max(count // 4, 10),
        lambda i: coach.get("/participants?q=mar").status_code,
    )


if __name__ == "__main__":
    main()
