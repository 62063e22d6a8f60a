"""Signed inbound texts per second through gunicorn on PostgreSQL, next to a bare Flask endpoint
on the same gunicorn settings, and p50/p99 latency at a fixed request rate (issue 4).

    .venv/bin/python bench/inbound_webhook.py \
        --server-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        [--requests 3000] [--concurrency 16] [--rate 200] [--seconds 10] [--workers 4]

Creates a private database on that server (dropped at the end), seeds 500 participants, starts
`gunicorn 'bot:create_app()'`, `gunicorn bench.bare_app:app` and `gunicorn bench.floor_app:app`
with the same worker settings, and drives them with the same client from this process. The floor
app does the least DESIGN.md allows for a text (check the signature, store and commit the raw
message, answer) with raw psycopg: no real /twilio/inbound can be faster than it. Each request is a distinct, correctly
signed Twilio form (new MessageSid), so every one is stored, deduplicated and processed. The
client runs on the same machine and takes CPU from the servers: the numbers are a floor.

Because wall-clock throughput on a shared 2-CPU machine moves with whatever else runs, the bench
also prints the CPU time each request cost the server side (read from /proc before and after the
throughput run): the gunicorn workers, and for the app the PostgreSQL backends serving it. That
figure depends much less on the machine being idle; 1000 / (CPU ms per request) is the request
rate one fully busy core could serve. It is a floor: PostgreSQL's WAL writer and checkpointer are
not counted, and the backends are the ones open after the warm-up (the pool is full by then).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode

from scratch import database_name, scratch_database
from sqlalchemy import text
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.models import Participant
from bot.services.seed import seed_defaults

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"
PUBLIC = "https://checkin.example.org"
PATH = "/twilio/inbound"
# Three ordinary replies and two keywords (YES with no reminded appointment, HELP with a reply).
BODIES = ("doing ok today", "yes", "thanks, got the job", "HELP", "see you tuesday")


def make_requests(count: int, participants: int) -> list[tuple[bytes, str]]:
    validator = RequestValidator(TOKEN)
    out = []
    for i in range(count):
        form = {
            "MessageSid": f"SM{uuid.uuid4().hex}",
            "AccountSid": "AC" + "0" * 32,
            "From": f"+1202555{i % participants:04d}",
            "To": "+15550100999",
            "Body": BODIES[i % len(BODIES)],
            "NumMedia": "0",
        }
        out.append((urlencode(form).encode(), validator.compute_signature(PUBLIC + PATH, form)))
    return out


def post(port: int, body: bytes, signature: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            PATH,
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, from /proc/<pid>/stat (fields 14 and 15)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def backend_pids(admin_url: str, database: str) -> list[int]:
    engine = make_engine(admin_url)
    with engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": database}
        ).scalars()
        result = list(pids)
    engine.dispose()
    return result


def cpu_of(pids: list[int]) -> float:
    return sum(process_cpu_seconds(pid) for pid in pids)


def throughput(port: int, requests: list[tuple[bytes, str]], concurrency: int) -> float:
    statuses: list[int] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(lambda r: post(port, *r), requests))
    elapsed = time.perf_counter() - start
    bad = [s for s in statuses if s != 200]
    if bad:
        sys.exit(f"port {port}: {len(bad)} non-200 answers, e.g. {bad[0]}")
    return len(requests) / elapsed


def fixed_rate(
    port: int, requests: list[tuple[bytes, str]], rate: float
) -> tuple[float, float, float]:
    """Open loop: request i is due at start + i/rate; latency counts from when it was due, so a
    server that falls behind is charged for the wait (no coordinated omission)."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def one(index: int) -> None:
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        status = post(port, *requests[index])
        done = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"status {status}")
        with lock:
            latencies.append((done - due) * 1000)

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(one, range(len(requests))))
    achieved = len(requests) / (time.perf_counter() - start)
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98], achieved


def wait_ready(port: int) -> None:
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"server on port {port} did not start")


def gunicorn(app: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
        "--log-level", "warning", app,
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server-url", required=True, help="PostgreSQL server URL (a db is made)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=5210)
    args = parser.parse_args()

    server = make_url(args.server_url)
    processes: list[subprocess.Popen[bytes]] = []
    with scratch_database(args.server_url, "checkin_bench") as url:
        name = database_name(url)
        try:
            upgrade_to_head(url)
            engine = make_engine(url)
            now = datetime.now(UTC)
            with session_scope(make_session_factory(engine)) as session:
                seed_defaults(session, now)
                for i in range(500):
                    session.add(
                        Participant(
                            external_id=f"B-{i}", first_name="Sam", phone=f"+1202555{i:04d}",
                            timezone="America/New_York", release_date=date(2026, 3, 1),
                            enrolled_at=now, created_at=now, updated_at=now,
                        )
                    )  # fmt: skip
            engine.dispose()
            env = dict(
                os.environ,
                DATABASE_URL=url,
                SECRET_KEY="bench-" + "k" * 32,
                PUBLIC_BASE_URL=PUBLIC,
                TWILIO_ACCOUNT_SID="AC" + "0" * 32,
                TWILIO_AUTH_TOKEN=TOKEN,
                TWILIO_FROM_NUMBER="+15550100999",
                LOG_LEVEL="WARNING",
            )
            app_port, bare_port, floor_port = args.port, args.port + 1, args.port + 2
            processes.append(gunicorn("bot:create_app()", app_port, args.workers, env))
            processes.append(gunicorn("bench.bare_app:app", bare_port, args.workers, env))
            processes.append(gunicorn("bench.floor_app:app", floor_port, args.workers, env))
            for port in (app_port, bare_port, floor_port):
                wait_ready(port)
                throughput(port, make_requests(200, 500), args.concurrency)

            reqs = make_requests(args.requests, 500)
            bare_pids = children(processes[1].pid)
            bare_cpu = cpu_of(bare_pids)
            bare_rps = throughput(bare_port, reqs, args.concurrency)
            bare_cpu = (cpu_of(bare_pids) - bare_cpu) / len(reqs) * 1000
            app_pids = children(processes[0].pid)
            pg_pids = backend_pids(server.render_as_string(hide_password=False), name)
            app_cpu, pg_cpu = cpu_of(app_pids), cpu_of(pg_pids)
            app_rps = throughput(app_port, reqs, args.concurrency)
            app_cpu = (cpu_of(app_pids) - app_cpu) / len(reqs) * 1000
            pg_cpu = (cpu_of(pg_pids) - pg_cpu) / len(reqs) * 1000
            floor_reqs = make_requests(args.requests, 500)
            floor_pids = children(processes[2].pid)
            floor_cpu, floor_pg_cpu = cpu_of(floor_pids), cpu_of(pg_pids)
            floor_rps = throughput(floor_port, floor_reqs, args.concurrency)
            floor_cpu = (cpu_of(floor_pids) - floor_cpu) / len(reqs) * 1000
            floor_pg_cpu = (cpu_of(pg_pids) - floor_pg_cpu) / len(reqs) * 1000
            fixed = make_requests(int(args.rate * args.seconds), 500)
            p50, p99, achieved = fixed_rate(app_port, fixed, args.rate)
            bare_p50, bare_p99, _ = fixed_rate(bare_port, fixed, args.rate)

            print(
                f"gunicorn -w {args.workers} (sync), PostgreSQL, client on the same {os.cpu_count()}-CPU machine"
            )
            print(f"throughput, {args.requests} requests at concurrency {args.concurrency}:")
            print(f"  bare Flask endpoint   {bare_rps:8.1f} req/s")
            print(
                f"  signed /twilio/inbound {app_rps:7.1f} msg/s  ({app_rps / bare_rps:.0%} of bare)"
            )
            print(
                f"  store-only floor       {floor_rps:7.1f} msg/s  ({floor_rps / bare_rps:.0%} of bare;"
                " bench/floor_app.py)"
            )
            print("server CPU per request (from /proc, independent of other load):")
            print(f"  bare Flask endpoint    {bare_cpu:5.2f} ms (gunicorn workers)")
            print(
                f"  signed /twilio/inbound {app_cpu + pg_cpu:5.2f} ms "
                f"({app_cpu:.2f} ms gunicorn workers + {pg_cpu:.2f} ms PostgreSQL backends)"
            )
            print(
                f"  store-only floor       {floor_cpu + floor_pg_cpu:5.2f} ms "
                f"({floor_cpu:.2f} ms gunicorn workers + {floor_pg_cpu:.2f} ms PostgreSQL backends)"
            )
            print(
                f"latency at a fixed {args.rate:.0f} req/s for {args.seconds:.0f} s (achieved {achieved:.1f}/s):"
            )
            print(f"  /twilio/inbound  p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
            print(f"  bare endpoint    p50 {bare_p50:6.1f} ms   p99 {bare_p99:6.1f} ms")
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
