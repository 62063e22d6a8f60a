"""Scheduler benchmarks (issue 5). Rerun:

    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/scheduler_tick.py [--population N] [--due M]

Creates a private database on that server (dropped at the end), seeds N planned participants
with set-based SQL, then prints: a tick with nothing due; a tick with M contacts due (plan +
enqueue + send through the simulated transport, rate limit off: this is the tick's own cost);
and the shared rate limiter held at 10 and 100 messages/s with two threads against a no-op send.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.config import Config
from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.transport.simulated import SimulatedTransport
from scheduler.plan import load_rules
from scheduler.send import RateLimiter
from scheduler.tick import tick

NOW = datetime(2026, 3, 3, 15, 30, tzinfo=UTC)


def seed(url: str, population: int, due: int) -> None:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        digest = load_rules(session).digest
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO participants (external_id, first_name, phone, channel, timezone, language,
                  release_date, status, enrolled_at, plan_version, planned_version, planned_settings,
                  created_at, updated_at)
                SELECT 'B-' || g, 'Sam', '+1' || (2000000000 + g)::text, 'sms', 'America/New_York',
                  'en', DATE '2026-01-01', 'active', :t, 1, 1, :digest, :t, :t
                FROM generate_series(1, :n) AS g
                """
            ),
            {"n": population, "t": NOW - timedelta(days=60), "digest": digest},
        )
        # A future check-in for everyone (not due), and `due` of them due now.
        conn.execute(
            text(
                """
                INSERT INTO planned_contacts (participant_id, kind, rule, occurrence, version,
                  template_key, send_after, not_after, state, created_at)
                SELECT id, 'checkin', 'checkin', 'day-70', 'v1.' || :digest, 'checkin.2',
                  :later, :later + interval '10 hours', 'planned', :t FROM participants
                """
            ),
            {"digest": digest, "later": NOW + timedelta(days=10), "t": NOW},
        )
        conn.execute(
            text(
                """
                INSERT INTO planned_contacts (participant_id, kind, rule, occurrence, version,
                  template_key, send_after, not_after, state, created_at)
                SELECT id, 'checkin', 'checkin', 'day-63', 'v1.' || :digest, 'checkin.1',
                  :slot, :slot + interval '10 hours', 'planned', :t
                FROM participants ORDER BY id LIMIT :due
                """
            ),
            {"digest": digest, "slot": NOW - timedelta(minutes=30), "t": NOW, "due": due},
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    args = parser.parse_args()
    server = make_url(os.environ["BENCH_DATABASE_URL"])
    name = f"bench_sched_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        started = time.perf_counter()
        seed(url, args.population, args.due)
        print(
            f"seeded {args.population} participants, {args.due} due, in {time.perf_counter() - started:.1f} s"
        )
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        config = Config(database_url=url, testing=True, send_rate_per_second=1000)
        transport = SimulatedTransport()
        quiet_now = NOW - timedelta(hours=1)  # before the due slot: nothing due
        tick(sessions, transport, config, quiet_now, rate_limited=False)  # warm up
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            tick(sessions, transport, config, quiet_now, rate_limited=False)
            runs.append((time.perf_counter() - started) * 1000)
        print(
            f"tick, nothing due, {args.population} participants: median {sorted(runs)[2]:.1f} ms (runs {', '.join(f'{r:.1f}' for r in runs)})"
        )
        started = time.perf_counter()
        summary = tick(sessions, transport, config, NOW, rate_limited=False)
        print(f"tick, {args.due} due: {time.perf_counter() - started:.2f} s ({summary.line()})")
        for rate in (10.0, 100.0):
            limiter = RateLimiter(sessions, rate)
            count = int(rate * 5)
            stamps: list[float] = []
            lock = threading.Lock()

            def worker(
                n: int,
                limiter: RateLimiter = limiter,
                lock: threading.Lock = lock,
                stamps: list[float] = stamps,
            ) -> None:
                for _ in range(n):
                    limiter.acquire()
                    with lock:
                        stamps.append(time.time())

            threads = [threading.Thread(target=worker, args=(count // 2,)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stamps.sort()
            achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
            worst = max(sum(1 for s in stamps if w <= s < w + 1.0) for w in stamps)
            print(
                f"rate {rate:g}/s, 2 workers, {len(stamps)} sends: achieved {achieved:.2f}/s "
                f"({(achieved / rate - 1) * 100:+.1f} %), max in any 1 s window {worst}"
            )
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
