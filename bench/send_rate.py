"""Send-rate benchmark (issue 5, point 8): the sender held at a configured rate across workers.

    flock /tmp/bench.lock env \\
        BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/send_rate.py [--port 4020] [--rates 10,100] [--seconds 15]

For each rate: a private PostgreSQL database with `rate * seconds` pending outbox messages (one
per participant, so batches fill), a local fake Twilio Messages endpoint (this process, an HTTP
server on 127.0.0.1:PORT answering 201 like Twilio), and TWO `checkin tick` processes started
at once with SEND_RATE_PER_SECOND=rate and TWILIO_API_BASE pointing at the fake, so every
request goes through the real TwilioTransport (the official SDK and its requests-based HTTP
client); the bench fails unless every request carries the SDK's User-Agent and Messages path.

The fake timestamps each request as it arrives. Printed: the mean rate ((n - 1) / (last -
first)); the most and the fewest requests in a sliding 1-second window, i.e. over EVERY
half-open interval [t, t + 1 s) with first <= t <= last - 1 s (the most crowded one starts at an
arrival, the emptiest one just after an arrival, so those are the only ones counted); and, for
reference, the min / max over fixed 1-second bins counted from the first arrival (whole bins
only). "Never above" means the sliding maximum is at most the rate.
"""

from __future__ import annotations

import argparse
import bisect
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from scratch import scratch_database
from sqlalchemy import text

from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from scheduler.slots import load_rules

# The fake Twilio is the one the tests use (tests/scheduler/fake_twilio.py); run as a script,
# this file's own directory is on the path, not the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.scheduler.fake_twilio import FakeTwilio
from tests.scheduler.helpers import max_in_window

NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 EST: outside quiet hours
CHECKIN = str(Path(sys.executable).parent / "checkin")


def seed(url: str, count: int) -> None:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        digest = load_rules(session).digest
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO participants (external_id, first_name, phone, channel, timezone,
                  language, release_date, status, enrolled_at, plan_version, planned_version,
                  planned_settings, created_at, updated_at)
                SELECT 'R-' || g, 'Sam', '+1' || (2000000000 + g)::text, 'sms',
                  'America/New_York', 'en', DATE '2025-01-01', 'active', :t, 1, 1, :digest, :t, :t
                FROM generate_series(1, :n) AS g
                """
            ),
            {"n": count, "digest": digest, "t": NOW},
        )
        conn.execute(
            text(
                """
                INSERT INTO outbound_messages (idempotency_key, participant_id, purpose, channel,
                  to_address, body, segments, ignore_quiet_hours, status, attempts, send_after,
                  created_at)
                SELECT 'bench:' || id, id, 'coach_reply', 'sms', phone, 'Hello from the bench',
                  1, false, 'pending', 0, :t, :t FROM participants
                """
            ),
            {"t": NOW},
        )
    engine.dispose()


def min_in_window(stamps: list[float], width: float = 1.0) -> int:
    """Fewest stamps in any [t, t + width) with stamps[0] <= t <= stamps[-1] - width: the
    minimum is reached with t just after a stamp (or at the first), i.e. counting (s, s + width]."""
    last = stamps[-1] - width
    starts = [i for i, s in enumerate(stamps) if s <= last]
    best = bisect.bisect_left(stamps, stamps[0] + width)  # t = first stamp
    for i in starts:
        best = min(best, bisect.bisect_right(stamps, stamps[i] + width) - (i + 1))
    return best


def fixed_bins(stamps: list[float], width: float = 1.0) -> list[int]:
    """Stamps per whole bin [first + k, first + k + 1)."""
    whole = int((stamps[-1] - stamps[0]) // width)
    bins = [0] * whole
    for s in stamps:
        k = int((s - stamps[0]) // width)
        if k < whole:
            bins[k] += 1
    return bins


def run(server_url: str, port: int, rate: float, seconds: float) -> None:
    count = int(rate * seconds)
    with scratch_database(server_url, "bench_rate") as url, FakeTwilio(port) as fake:
        upgrade_to_head(url)
        seed(url, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_"))}
        env.update(
            DATABASE_URL=url,
            TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            TWILIO_AUTH_TOKEN="token",
            TWILIO_FROM_NUMBER="+15550100000",
            TWILIO_API_BASE=f"http://127.0.0.1:{port}",
            PUBLIC_BASE_URL="https://checkin.example.org",
            SEND_RATE_PER_SECOND=str(rate),
            PROGRAM_TIMEZONE="America/New_York",
            LOG_LEVEL="WARNING",
        )
        procs = [
            subprocess.Popen(
                [CHECKIN, "tick", "--now", NOW.isoformat()],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=seconds * 4 + 60) for p in procs]
        for p, (_out, err) in zip(procs, outputs, strict=True):
            if p.returncode != 0:
                raise SystemExit(f"tick failed ({p.returncode}): {err[-2000:]}")
        strangers = [f"{a.user_agent} {a.path}" for a in fake.arrivals if not a.from_sdk]
        if strangers:
            raise SystemExit(f"requests not made by the Twilio SDK: {strangers[:3]}")
        stamps = sorted(a.at for a in fake.arrivals)
        recipients = set(fake.to_addresses())
        mean = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        worst, least, bins = max_in_window(stamps), min_in_window(stamps), fixed_bins(stamps)
        print(
            f"rate {rate:g}/s configured, 2 `checkin tick` processes, TwilioTransport (SDK) -> "
            f"local fake: {len(stamps)} requests ({len(recipients)} distinct recipients, "
            f"{count} queued) in {stamps[-1] - stamps[0]:.2f} s; mean {mean:.2f}/s "
            f"({(mean / rate - 1) * 100:+.1f} %); sliding 1 s windows: min {least}, "
            f"max {worst} ({'never above' if worst <= rate else 'ABOVE'} {rate:g}); "
            f"fixed 1 s bins: min {min(bins)}, max {max(bins)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=4020)
    parser.add_argument("--rates", default="10,100")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    for rate in (float(r) for r in args.rates.split(",")):
        run(os.environ["BENCH_DATABASE_URL"], args.port, rate, args.seconds)


if __name__ == "__main__":
    main()
