"""tick(now): plan, send due, sweep. Built in issue 5."""

from __future__ import annotations

import sys

from bot.config import Config


def run_tick_command(config: Config, now_text: str | None) -> int:
    print("checkin tick: not built yet (issue 5: outbound scheduler)", file=sys.stderr)
    return 2
