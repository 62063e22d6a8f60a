"""Urgent lane benchmark (issue 15, point 4): a crisis text's page reaches Twilio within seconds
while the worker is in the middle of a routine backlog. Rerun:

    flock /tmp/bench.lock env \\
        BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/urgent_lane.py [--backlog 1000] [--rate 1] [--crises 25] \\
        [--spacing 3] [--seconds 90] [--sqlite]

Set-up: a private PostgreSQL database (bench/scratch.py; `--sqlite`: a file in a temporary
directory instead) with the default settings and templates, `--backlog` routine texts due now
(late webhook replies, one per person: a routine purpose, and sent in quiet hours too, so the
bench runs at any hour), and `--crises` more participants, each with their own coach (so each
page is told apart by its number). A fake Twilio Messages endpoint (tests/scheduler/
fake_twilio.py, an HTTP server on 127.0.0.1 that timestamps every request as it arrives).

Run: the real `checkin worker` (its ticks and its urgent lane, scheduler/worker.py) as a
process, SEND_RATE_PER_SECOND=`--rate`, the Twilio transport pointed at the fake
(TWILIO_API_BASE). Once the fake has received the first routine text (the tick is in the
backlog), this process sends `--crises` crisis texts ("I want to kill myself") through the
signed webhook (POST /twilio/inbound, X-Twilio-Signature, the Flask test client on the same
database), one every `--spacing` seconds. Each raises an urgent crisis flag whose ladder pages
the person's coach.

Measured, for each crisis text: from just before its POST to the fake's arrival of the page to
its coach. Printed: the count, p50, p99 and max of that delay; the routine texts the fake got
meanwhile (the backlog was still being sent); and the most requests the fake got in any
1-second window (arrival times, so network jitter included). Bounded: everything stops after
`--seconds` (pages not arrived by then are counted as missing).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from scratch import scratch_database
from sqlalchemy import insert
from twilio.request_validator import RequestValidator

from bot.config import Config
from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.models import OutboundMessage, Participant, User
from bot.services.seed import seed_defaults

# The fake Twilio is the tests' (run as a script, this file's directory is on the path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.scheduler.fake_twilio import FakeTwilio
from tests.scheduler.helpers import max_in_window

CHECKIN = str(Path(sys.executable).parent / "checkin")
ACCOUNT = "AC" + "0" * 32
TOKEN = "bench-token-0123456789"
PUBLIC = "https://checkin.example.org"
PROGRAM_NUMBER = "+15550100999"
CRISIS_TEXT = "I want to kill myself"


def coach_phone(i: int) -> str:
    return f"+1202600{i:04d}"


def crisis_phone(i: int) -> str:
    return f"+1312600{i:04d}"


def seed(url: str, backlog: int, crises: int) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC)
    with session_scope(make_session_factory(engine)) as session:
        seed_defaults(session, now)
        people = [
            {
                "external_id": f"R-{i}",
                "first_name": "Sam",
                "phone": f"+1202555{i:04d}",
                "timezone": "America/New_York",
                "release_date": date(2026, 1, 1),
                "enrolled_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(backlog)
        ]
        ids = session.scalars(insert(Participant).returning(Participant.id), people).all()
        session.execute(
            insert(OutboundMessage),
            [
                {
                    "idempotency_key": f"bench:{pid}",
                    "participant_id": pid,
                    "purpose": "reply",
                    "channel": "sms",
                    "to_address": person["phone"],
                    "body": "Thanks, got it",
                    "ignore_quiet_hours": True,
                    "status": "pending",
                    "attempts": 0,
                    "send_after": now,
                    "created_at": now,
                }
                for pid, person in zip(ids, people, strict=True)
            ],
        )
        for i in range(crises):
            coach = User(
                email=f"coach{i}@example.org",
                name=f"Coach {i}",
                role="coach",
                password_hash="x",
                phone=coach_phone(i),
                created_at=now,
            )
            session.add(coach)
            session.flush()
            session.add(
                Participant(
                    external_id=f"C-{i}",
                    first_name="Alex",
                    phone=crisis_phone(i),
                    timezone="America/New_York",
                    release_date=date(2026, 1, 1),
                    enrolled_at=now,
                    created_at=now,
                    updated_at=now,
                    coach_id=coach.id,
                )
            )
    engine.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(url: str, args: argparse.Namespace) -> int:
    upgrade_to_head(url)
    seed(url, args.backlog, args.crises)
    with FakeTwilio() as twilio:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_"))}
        env.update(
            DATABASE_URL=url,
            SECRET_KEY="bench-secret-key-0123456789-0123456789",
            PUBLIC_BASE_URL=PUBLIC,
            TWILIO_ACCOUNT_SID=ACCOUNT,
            TWILIO_AUTH_TOKEN=TOKEN,
            TWILIO_FROM_NUMBER=PROGRAM_NUMBER,
            TWILIO_API_BASE=twilio.url,
            SEND_RATE_PER_SECOND=str(args.rate),
            PROGRAM_TIMEZONE="America/New_York",
            LOG_LEVEL="WARNING",
        )
        worker = subprocess.Popen([CHECKIN, "worker"], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + args.seconds
        sent_at: dict[str, float] = {}  # coach's number -> when the crisis text was posted
        try:
            while not twilio.arrivals and time.monotonic() < deadline:
                time.sleep(0.05)
            if not twilio.arrivals:
                print("error: the worker sent nothing", file=sys.stderr)
                return 1
            from bot import create_app

            config = Config(
                database_url=url,
                database_url_explicit=True,
                secret_key="bench-secret-key-0123456789-0123456789",
                public_base_url=PUBLIC,
                program_timezone="America/New_York",
                twilio_account_sid=ACCOUNT,
                twilio_auth_token=TOKEN,
                twilio_from_number=PROGRAM_NUMBER,
                twilio_api_base=twilio.url,
            )
            client = create_app(config).test_client()
            logging.disable(logging.INFO)  # the app's per-text log lines
            validator = RequestValidator(TOKEN)
            started = time.monotonic()
            for i in range(args.crises):
                wait = started + i * args.spacing - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if time.monotonic() > deadline:
                    break
                form = {
                    "MessageSid": f"SM{uuid.uuid4().hex}",
                    "AccountSid": ACCOUNT,
                    "From": crisis_phone(i),
                    "To": PROGRAM_NUMBER,
                    "Body": CRISIS_TEXT,
                    "NumMedia": "0",
                }
                signature = validator.compute_signature(PUBLIC + "/twilio/inbound", form)
                sent_at[coach_phone(i)] = time.time()
                response = client.post(
                    "/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
                )
                if response.status_code != 200:
                    print(f"error: webhook answered {response.status_code}", file=sys.stderr)
                    return 1
            while time.monotonic() < deadline:
                if set(sent_at) <= set(twilio.to_addresses()):
                    break
                time.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGTERM)
            _, errors = worker.communicate(timeout=60)
        arrivals = list(twilio.arrivals)
    pages = {a.form["To"]: a.at for a in arrivals if a.form["To"] in sent_at}
    delays = [pages[to] - at for to, at in sent_at.items() if to in pages]
    routine = [a for a in arrivals if a.form["To"] not in sent_at]
    during = [a for a in routine if a.at >= min(sent_at.values(), default=0.0)]
    print(
        f"urgent lane: backlog {args.backlog} routine texts at {args.rate:g}/s, "
        f"{len(sent_at)} crisis texts through the signed webhook, one every {args.spacing:g} s "
        f"({'SQLite' if args.sqlite else 'PostgreSQL'})"
    )
    print(f"  pages received: {len(delays)} of {len(sent_at)}")
    if delays:
        print(
            "  crisis text -> page at Twilio: "
            f"p50 {statistics.median(delays):.2f} s, p99 {percentile(delays, 0.99):.2f} s, "
            f"max {max(delays):.2f} s, min {min(delays):.2f} s"
        )
    print(
        f"  routine texts received meanwhile: {len(during)} "
        f"(of {len(routine)} in all; the backlog was {args.backlog})"
    )
    print(
        f"  most requests in any 1-second window at the fake: {max_in_window([a.at for a in arrivals])}"
    )
    if worker.returncode != 0:
        print(f"error: worker exited {worker.returncode}\n{errors}", file=sys.stderr)
        return 1
    return 0 if len(delays) == len(sent_at) else 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--crises", type=int, default=25)
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    args = parser.parse_args()
    if args.sqlite:
        with tempfile.TemporaryDirectory() as directory:
            sys.exit(run(f"sqlite:///{directory}/bench.sqlite3", args))
    server = os.environ.get("BENCH_DATABASE_URL")
    if not server:
        sys.exit("BENCH_DATABASE_URL (a PostgreSQL server URL) is required, or --sqlite")
    with scratch_database(server, "checkin_urgent") as url:
        code = run(url, args)
    sys.exit(code)


if __name__ == "__main__":
    main()
