"""plan(now): materialise planned contacts. Built in issue 5."""

from __future__ import annotations

import sys
from datetime import datetime

from bot.config import Config


def run_plan_command(config: Config, external_id: str, as_json: bool, now: datetime) -> int:
    print("checkin plan: not built yet (issue 5: outbound scheduler)", file=sys.stderr)
    return 2
