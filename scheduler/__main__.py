"""`python -m scheduler` runs the worker, like `checkin worker`."""

import sys

from bot.config import load_config
from scheduler.worker import run_worker

sys.exit(run_worker(load_config()))
