"""The outbox: every outbound text is a row here, with a unique idempotency key, before any
network call, and this package is the only writer of its `status`:

    pending --claim--> sending --outcome--> queued/sent/... (status callbacks move it on)
       ^                 |  \\--> pending (retryable error, backoff) | failed | unknown
       +----release------+   \\--> unknown (a dead worker's stale claim, flagged)
    pending --> cancelled (opt-out, pause, window closed, acknowledged page)

- `enqueue` (one message) and `insert_batch` (due planned contacts): bot.services.outbox.enqueue
- claims, release, stale claims: bot.services.outbox.claims
- outcomes, backoff: bot.services.outbox.outcomes
- status callbacks, cancellations, the demo's history: bot.services.outbox.status

Whether a message may go now is decided by bot.services.sendability; the sender that drives
all this is scheduler/send.py. Only `enqueue` is imported here, so that importing the package
pulls in nothing that imports it back (outcomes import bot.services.delivery).
"""

from bot.services.outbox.enqueue import Enqueued, enqueue

__all__ = ["Enqueued", "enqueue"]
