"""The worker process: APScheduler as a timer around tick(now). Built in issue 5."""

from __future__ import annotations

import sys

from bot.config import Config


def run_worker(config: Config) -> int:
    print("checkin worker: not built yet (issue 5: outbound scheduler)", file=sys.stderr)
    return 2
