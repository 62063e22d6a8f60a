"""Scheduler tick benchmarks (issue 5, point 8). Rerun:

    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/scheduler_tick.py --population 100000 --shape day [--profile]
    BENCH_DATABASE_URL=... .venv/bin/python bench/scheduler_tick.py --population 1000000 --shape idle

Each run creates a private database on that server (dropped at the end) and seeds it with
set-based SQL, all participants in America/New_York, already planned (planned_version and the
settings digest current, so `plan` has nothing to do), no appointments:

- `--shape day`: "a day's contacts due". Participant g was released (g mod 91) days before
  2026-03-03, so the population is spread evenly over days 0-90 since release. Each has the
  default programme's rows: the welcome and every check-in of the default cadence (days 1, 2,
  3, 5, 7, 10, 14, then weekly to 84) at 10:00 local; rows before today are `sent`, today's and
  later ones `planned`. At 10:00 local on 2026-03-03 what is due is every participant whose day
  since release is a cadence day (17 of 91) plus the welcome of those released today (1 of 91):
  about 19.8 % of the population. The bench prints the exact count. It times ticks at 09:00
  local (nothing due) and then ONE tick at 10:00 local that does everything: plan (nothing),
  enqueue (render every body), claim, send, record (which on PostgreSQL also creates each sent
  check-in's expectation), and the sweep (which then has none left to create).
- `--shape idle`: every participant has one check-in `sent` last week and the next one
  `planned` next week; a tick with nothing due, timed five times.

Transport: the in-memory SimulatedTransport (no network; it records each request). The shared
rate limiter is ON at 1,000,000 messages/s (claim batches of BATCH = 2000, one slot
reservation per RESERVE_MAX = 500 sends; scheduler/rate.py), so it is included in the cost but
is not the bottleneck; the real send rate is benched separately in bench/send_rate.py.
`--profile` prints a pyinstrument profile of the due tick; `--repeat N` times the due tick N
times, each on a fresh copy of the seeded database, and prints the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from scratch import database_name, scratch_database
from sqlalchemy import text

from bot.config import Config
from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.services.templates import seed_default_templates
from bot.transport.simulated import SimulatedTransport
from messages.defaults import checkin_variant_key
from scheduler.slots import load_rules
from scheduler.tick import tick

TODAY = date(2026, 3, 3)
ZONE = "America/New_York"
DUE_AT = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 EST
BEFORE = DUE_AT - timedelta(hours=1)  # 09:00 EST: nothing due yet
RATE = 1_000_000.0


def _participants(conn: Any, population: int, digest: str, release_sql: str) -> None:
    conn.execute(
        text(
            f"""
            INSERT INTO participants (external_id, first_name, phone, channel, timezone, language,
              release_date, status, enrolled_at, plan_version, planned_version, planned_settings,
              created_at, updated_at)
            SELECT 'B-' || g, 'Sam', '+1' || (2000000000 + g)::text, 'sms', :zone,
              CASE WHEN g % 5 = 0 THEN 'es' ELSE 'en' END, {release_sql}, 'active',
              (({release_sql}) - 1)::timestamp AT TIME ZONE 'UTC', 1, 1, :digest, :t, :t
            FROM generate_series(1, :n) AS g
            """
        ),
        {"n": population, "digest": digest, "zone": ZONE, "t": DUE_AT - timedelta(days=100)},
    )


def seed_day(url: str, population: int) -> None:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        seed_default_templates(session, DUE_AT)  # as `checkin init-db` does
        rules = load_rules(session)
    days = rules.checkin_days
    cadence = ", ".join(
        f"({day}, '{checkin_variant_key(i)}', 'day-{day}')" for i, day in enumerate(days, 1)
    )
    with engine.begin() as conn:
        _participants(conn, population, rules.digest, f"DATE '{TODAY}' - (g % 91)")
        local10 = "((p.release_date + c.day)::timestamp + time '10:00') AT TIME ZONE :zone"
        local20 = "((p.release_date + c.day)::timestamp + time '20:00') AT TIME ZONE :zone"
        conn.execute(
            text(
                f"""
                INSERT INTO planned_contacts (participant_id, kind, rule, occurrence, version,
                  template_key, send_after, not_after, state, created_at, decided_at)
                SELECT p.id, c.kind, c.rule, c.occ, :version, c.key, {local10},
                  {local10} + CASE WHEN c.kind = 'welcome' THEN interval '7 days'
                                   ELSE {local20} - {local10} END,
                  CASE WHEN p.release_date + c.day < DATE '{TODAY}' THEN 'sent' ELSE 'planned' END,
                  :created,
                  CASE WHEN p.release_date + c.day < DATE '{TODAY}' THEN {local10} END
                FROM participants p CROSS JOIN (
                  SELECT 0 AS day, 'welcome' AS key, 'welcome' AS occ, 'welcome' AS kind,
                    'welcome' AS rule
                  UNION ALL SELECT v.day, v.key, v.occ, 'checkin', 'checkin'
                  FROM (VALUES {cadence}) AS v(day, key, occ)
                ) AS c
                """
            ),
            {
                "zone": ZONE,
                "version": f"v1.{rules.digest}",
                "created": DUE_AT - timedelta(days=100),
            },
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def seed_idle(url: str, population: int) -> None:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        digest = load_rules(session).digest
    with engine.begin() as conn:
        _participants(conn, population, digest, f"DATE '{TODAY}' - 60")
        for occ, offset, state in (("day-56", -4, "sent"), ("day-63", 3, "planned")):
            slot = DUE_AT + timedelta(days=offset)
            conn.execute(
                text(
                    """
                    INSERT INTO planned_contacts (participant_id, kind, rule, occurrence, version,
                      template_key, send_after, not_after, state, created_at)
                    SELECT id, 'checkin', 'checkin', :occ, :version, 'checkin.2', :slot,
                      :slot + interval '10 hours', :state, :t FROM participants
                    """
                ),
                {"occ": occ, "version": f"v1.{digest}", "slot": slot, "state": state, "t": DUE_AT},
            )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def count_due(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        due = conn.execute(
            text(
                "SELECT count(*) FROM planned_contacts WHERE state = 'planned' AND send_after <= :t"
            ),
            {"t": DUE_AT},
        ).scalar_one()
    engine.dispose()
    return int(due)


def postgres_cpu_seconds() -> float | None:
    """CPU time (user + system) used so far by every process named postgres on this host, read
    from /proc; None where there is no /proc. Meaningful only when the server is local."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue  # the process ended meanwhile
        if fields[0].endswith("(postgres"):
            values = fields[1].split()
            ticks += int(values[11]) + int(values[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def time_idle_ticks(url: str, population: int) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    config = Config(database_url=url, testing=True, send_rate_per_second=RATE)
    transport = SimulatedTransport()
    tick(sessions, transport, config, BEFORE)  # warm up (and creates the rate slot row)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        tick(sessions, transport, config, BEFORE)
        runs.append((time.perf_counter() - started) * 1000)
    engine.dispose()
    print(
        f"tick, nothing due, {population} participants (plan + send + sweep): "
        f"median {sorted(runs)[2]:.1f} ms (runs {', '.join(f'{r:.1f}' for r in runs)})"
    )


def time_due_tick(url: str, population: int, profile: bool) -> float:
    """One warm-up tick at 09:00 (nothing due), then the timed tick at 10:00. Returns seconds."""
    due = count_due(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    config = Config(database_url=url, testing=True, send_rate_per_second=RATE)
    transport = SimulatedTransport()
    tick(sessions, transport, config, BEFORE)
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    server_cpu = postgres_cpu_seconds()
    own_cpu = time.process_time()
    started = time.perf_counter()
    summary = tick(sessions, transport, config, DUE_AT)
    elapsed = time.perf_counter() - started
    own_cpu = time.process_time() - own_cpu
    server_after = postgres_cpu_seconds()
    engine.dispose()
    if profiler is not None:
        profiler.stop()
        print(
            profiler.output_text(
                unicode=False,
                color=False,
                show_all=os.environ.get("BENCH_PROFILE_ALL") == "1",
            )
        )
    print(
        f"tick at 10:00 local, {population} participants, {due} contacts due "
        f"(simulated transport, rate limiter on at {RATE:,.0f}/s): {elapsed:.2f} s, "
        f"{len(transport.sent)} sent\n  {summary.line()}"
    )
    server = (
        "n/a"
        if server_after is None or server_cpu is None
        else f"{server_after - server_cpu:.2f} s"
    )
    print(f"  CPU during that tick: this process {own_cpu:.2f} s, PostgreSQL {server}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument("--shape", choices=("day", "idle"), default="day")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="day shape: time the due tick this many times, each on a fresh copy of the seeded "
        "database (CREATE DATABASE ... TEMPLATE), and print the median",
    )
    args = parser.parse_args()
    server_url = os.environ["BENCH_DATABASE_URL"]
    with scratch_database(server_url, "bench_sched") as url:
        upgrade_to_head(url)
        started = time.perf_counter()
        (seed_day if args.shape == "day" else seed_idle)(url, args.population)
        print(
            f"seeded {args.population} participants (shape {args.shape}) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        if args.shape == "day" and args.repeat > 1:
            engine = make_engine(url)
            with engine.connect() as conn:
                conn.execute(text("CHECKPOINT"))  # the copies start from the seeded files
            engine.dispose()  # a template must have no connections
            times = []
            for _ in range(args.repeat):
                with scratch_database(
                    server_url, "bench_sched_copy", template=database_name(url)
                ) as copy:
                    times.append(time_due_tick(copy, args.population, args.profile))
            print(
                f"due tick over {args.repeat} fresh copies: median {statistics.median(times):.2f} s"
                f" (runs {', '.join(f'{t:.2f}' for t in times)})"
            )
        time_idle_ticks(url, args.population)
        if args.shape == "day" and args.repeat <= 1:
            time_due_tick(url, args.population, args.profile)


if __name__ == "__main__":
    main()
