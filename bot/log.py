"""Structured logging: one event per line, phones masked, message bodies never logged."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


def mask_phone(address: str | None) -> str:
    """`+15555554567` -> `+1******4567`; keeps a `whatsapp:` prefix; never returns the full number."""
    if not address:
        return ""
    prefix = ""
    if address.startswith("whatsapp:"):
        prefix, address = "whatsapp:", address.removeprefix("whatsapp:")
    digits = address.lstrip("+")
    if len(digits) <= 5:
        return prefix + "*" * len(address)
    lead = "+" if address.startswith("+") else ""
    return f"{prefix}{lead}{digits[0]}{'*' * (len(digits) - 5)}{digits[-4:]}"


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event as a single JSON line. Callers pass masked phones and never a body."""
    if not logger.isEnabledFor(level):
        return  # not worth the JSON encoding on the webhook's hot path
    logger.log(level, json.dumps({"event": event, **fields}, default=str, sort_keys=True))


_configured = False


def configure_logging(level: str = "INFO") -> None:
    """Send log lines to stderr once per process; called by the CLI and the app factory."""
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("bot")
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("scheduler",):
        other = logging.getLogger(name)
        other.addHandler(handler)
        other.setLevel(level)
    _configured = True
