"""A transport that sends nothing: it records what would have been sent.

Used by the demo, the phone simulator and the tests. It keeps messages in memory for the
process; the outbox table is the durable record either way.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field

from bot.log import log_event, mask_phone

from .base import SendRequest, SendResult, TransportError

log = logging.getLogger(__name__)


@dataclass
class SimulatedTransport:
    name: str = "simulated"
    sent: list[SendRequest] = field(default_factory=list)
    # Addresses that fail as a carrier would, for tests and the demo: address -> Twilio code.
    failing: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # SIDs are a random half and a counter, without a call to the OS's random source per
    # message (uuid4 took 0.2 s of the sending thread in a 20,000-text tick, by pyinstrument).
    # The random half is drawn per process: a transport created before a fork (gunicorn's
    # --preload) must not mint the same SIDs in every worker.
    _sid_prefix: str = field(default="", init=False, repr=False, compare=False)
    _sid_counter: itertools.count[int] = field(
        default_factory=itertools.count, init=False, repr=False, compare=False
    )
    _sid_pid: int = field(default=0, init=False, repr=False, compare=False)

    def send(self, request: SendRequest) -> SendResult:
        code = self.failing.get(request.to)
        if code is not None:
            raise TransportError(f"simulated failure {code}", permanent=True, code=code)
        with self._lock:
            self.sent.append(request)
            sid = self._next_sid()
        log_event(log, "transport.simulated_send", to=mask_phone(request.to), sid=sid)
        return SendResult(provider_sid=sid, status="queued")

    def _next_sid(self) -> str:
        """A Twilio-shaped message SID no other transport, here or in another process, mints.
        Called under the lock."""
        if self._sid_pid != os.getpid():
            self._sid_prefix, self._sid_pid = secrets.token_hex(8), os.getpid()
            self._sid_counter = itertools.count()
        return f"SM{self._sid_prefix}{next(self._sid_counter):016x}"

    def messages_to(self, address: str) -> list[SendRequest]:
        with self._lock:
            return [m for m in self.sent if m.to == address]
