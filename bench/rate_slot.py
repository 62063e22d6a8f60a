"""Latency of one rate-slot reservation (scheduler.rate.RateLimiter.reserve). Rerun:

    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/rate_slot.py [--reservations 2000]

Every send at an ordinary rate (below 200/s) takes one reservation, and every worker waits on
the same row for it, so its latency is time each send waits and how long the row stays locked.
Creates a private database on that server (dropped at the end), makes `--reservations`
reservations of ten slots one after another on an otherwise idle server, and prints the median
and 90th percentile. To compare another version of the code, run this file with that version's
checkout first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from scratch import scratch_database

from bot.db import make_engine, make_session_factory, upgrade_to_head
from scheduler.rate import RateLimiter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reservations", type=int, default=2000)
    args = parser.parse_args()
    with scratch_database(os.environ["BENCH_DATABASE_URL"], "bench_rate_slot") as url:
        upgrade_to_head(url)
        engine = make_engine(url)
        limiter = RateLimiter(make_session_factory(engine), 1_000_000.0)
        for _ in range(100):  # warm up: the row, the pool, the statement caches
            limiter.reserve(10)
        took = []
        for _ in range(args.reservations):
            started = time.perf_counter()
            limiter.reserve(10)
            took.append((time.perf_counter() - started) * 1000)
        getattr(limiter, "close", lambda: None)()  # older versions have no close()
        engine.dispose()
    took.sort()
    print(
        f"{args.reservations} reservations, one after another: median "
        f"{statistics.median(took):.3f} ms, p90 {took[int(len(took) * 0.9)]:.3f} ms"
    )


if __name__ == "__main__":
    main()
