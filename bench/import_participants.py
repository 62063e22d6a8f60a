"""Time a 10,000-row participant import on a fresh SQLite database (issue 3).

    .venv/bin/python bench/import_participants.py [--rows 10000] [--database-url URL]

Imports the file twice (create, then an unchanged re-import) and prints wall-clock seconds.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from bot.models import Participant
from bot.services.importer import import_participants

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
)


def make_csv(rows: int) -> str:
    lines = ["external_id,first_name,phone,release_date,timezone,language,coach_email,channel"]
    start = date(2026, 1, 1)
    for i in range(rows):
        area = 202 + (i // 10000) * 10
        lines.append(
            f"B-{i:06d},Person{i},+1{area}555{i % 10000:04d},{start + timedelta(days=i % 120)},"
            f"{ZONES[i % len(ZONES)]},{'es' if i % 3 == 0 else 'en'},,{'whatsapp' if i % 9 == 0 else 'sms'}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        upgrade_to_head(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        text = make_csv(args.rows)
        for label in ("first import (create)", "re-import (unchanged)"):
            started = time.perf_counter()
            with session_scope(sessions) as session:
                summary = import_participants(
                    session,
                    io.StringIO(text),
                    now=datetime.now(UTC),
                    default_timezone="America/New_York",
                    recorded_by="bench",
                )
            elapsed = time.perf_counter() - started
            print(
                f"{label}: {args.rows} rows in {elapsed:.2f} s ({args.rows / elapsed:,.0f} rows/s): {summary}"
            )
        with sessions() as session:
            print(
                "participants in database:",
                session.scalar(select(func.count()).select_from(Participant)),
            )
        engine.dispose()


if __name__ == "__main__":
    main()
