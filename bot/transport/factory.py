"""Pick the transport the configuration asks for."""

from __future__ import annotations

import logging

from bot.config import Config
from bot.log import log_event

from .base import Transport
from .simulated import SimulatedTransport

log = logging.getLogger(__name__)
_warned = False


def make_transport(config: Config) -> Transport:
    """Twilio when credentials are set (and not in the demo); otherwise the simulated transport,
    said loudly once per process because a silent simulated transport means no texts go out."""
    global _warned
    if config.twilio_enabled:
        from .twilio import TwilioTransport

        return TwilioTransport.from_config(config)
    if not _warned and not config.testing:
        log_event(
            log,
            "transport.simulated",
            logging.WARNING,
            note="no Twilio credentials (or demo mode): using the SIMULATED transport; no real texts will be sent",
        )
        _warned = True
    return SimulatedTransport()
