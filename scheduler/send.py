"""send_due(now): one send pass. Due outbox rows and due planned contacts are claimed in
batches and sent, each at its rate slot, with a last look before each request.

The parts, each explained where it lives:
- the rate limit shared by every worker: scheduler/rate.py (RateLimiter);
- due planned contacts -> outbox rows, each person's first one already claimed, and the
  PostgreSQL read-ahead of the next batch: scheduler/enqueue.py;
- claims, release and stale claims: bot/services/outbox/claims.py; outcomes, backoff:
  bot/services/outbox/outcomes.py (the outbox is the only writer of outbound statuses);
- whether a message may go now (at enqueue, at claim and at the last look):
  bot/services/sendability.py.

A pass (send_due): recover dead claims; then, while anything is due, take a batch, either
outbox rows already waiting (retries, replies, pages, a person's second text: the claim) or,
once none is due, due planned contacts (enqueue_due, inserted already claimed), and send it
(send_batch). A batch holds at most one message per recipient and is what the configured
rate sends in CLAIM_WINDOW_SECONDS, so a claim-time check is never more than about that old
when the text leaves.

Just before each request the last look re-applies the claim's rules (sendability.decide) to
the person's status as committed now and to the time now: a STOP, a pause or a close may have
landed while the claim was made (or the program began requiring consent evidence the person
lacks), and a tick that sends for minutes must not carry its start time into quiet hours or
past a window's end. A claim that fails it, and every claim after
it, is given back (`release`) for the claim to decide again.

Outcomes are committed together, when the sender has a long wait for its next rate slot
anyway (`FLUSH_GAP_SECONDS`) and at least every `FLUSH_SECONDS` (so a status callback rarely
finds its SID unknown). PostgreSQL: a group of successes only is committed by a helper thread,
in order, while the sender goes on (`OutcomeWriter`); a group with an error is committed by
the sender itself after the helper's, and a claim and the end of send_due wait for the
helper. Just before a group of claims is sent, their `handed_at` is committed (`mark_handed`,
about HAND_AHEAD_SECONDS of sending at a time). A row left in `sending` with `handed_at` set
(the process died between handing it over and the outcome's commit) cannot be known to be
unsent: it is never resent but marked `unknown` and flagged once its lease runs out; one
without goes back to `pending` (recover_stale). A stop that is not a crash (SIGTERM, an error
in our own code) releases the rows it never handed to the transport back to `pending` at once.
An error about the Twilio account (authentication, suspension) stops the pass; the message
stays pending (bot.services.outbox.account_errors).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.bulk import in_ids
from bot.config import Config
from bot.db import is_postgresql, session_scope
from bot.models import Participant
from bot.services import consent_evidence, sendability, whatsapp_window
from bot.services.outbox import account_errors
from bot.services.outbox.claims import (
    Claim,
    SendCounts,
    claim_batch,
    mark_handed,
    recover_stale,
    release,
)
from bot.services.outbox.outcomes import Outcomes, commit_outcomes
from bot.transport.base import Transport, TransportError

from .enqueue import EnqueueStep, ReadAhead, Renderer, enqueue_due
from .rate import BATCH, RateLimiter

__all__ = ["OutcomeWriter", "SendCounts", "send_batch", "send_due"]

# Outcomes are committed at least this often while a batch is being sent.
FLUSH_SECONDS = 0.1
# Claims are marked handed to the transport (outbound_messages.handed_at) in groups of what
# the rate sends in this long, committed before the first of them is sent; unrated, this many.
HAND_AHEAD_SECONDS = 0.5
HAND_GROUP_UNLIMITED = 20
# Commit waiting outcomes before sleeping for a slot at least this far away (low rates): far
# enough that the commit (a few ms, tens under load) ends before the slot, which would
# otherwise be missed. Closer slots (high rates) leave the outcomes to FLUSH_SECONDS.
FLUSH_GAP_SECONDS = 0.05


class OutcomeWriter:
    """Commits outcomes, in order. With `background` (PostgreSQL) a group that is all
    successes is committed by one helper thread on its own connection while the sender goes
    on (its next batch's enqueue, its next sends): recording a success changes nothing the
    sender decides on. A group with any error is committed here, after everything handed to
    the thread (an error can opt a person out or skip their contact, which later claims and
    last looks must see). `drain` waits for the thread: before a claim (a person's second
    text is judged after the first one's outcome) and at the end of send_due, so the tick's
    sweep sees every success. A row whose success is still waiting is `sending`, as between
    a send and its flush: a crash leaves it to recover_stale, never resent."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        now: datetime,
        counts: SendCounts,
        *,
        background: bool,
    ) -> None:
        self.sessions, self.now, self.counts = sessions, now, counts
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="send-outcomes")
            if background
            else None
        )
        self._waiting: deque[Future[SendCounts]] = deque()
        # Called before errors are committed: send_due's discard of a batch read ahead, whose
        # open transaction may hold the locks an error's consequences (an opt-out cancels the
        # person's contacts) must take, and which must be decided after those consequences.
        self.before_errors: Callable[[], None] | None = None

    def commit(self, outcomes: Outcomes) -> None:
        """Commit `outcomes` (now or on the helper thread) and empty it."""
        if not outcomes:
            return
        self._collect(block=False)  # a failed background commit stops the sender here
        if self._executor is None or outcomes.errors:
            try:
                if outcomes.errors and self.before_errors is not None:
                    self.before_errors()  # may raise the read-ahead's error: raised after
            finally:
                # The errors are recorded even then: a 21610 opts the person out, a known
                # unsent retryable goes back to `pending` (not `unknown` five minutes later).
                try:
                    self.drain()
                finally:
                    commit_outcomes(self.sessions, outcomes, self.now, self.counts)
            return
        group = Outcomes(sent=list(outcomes.sent))
        outcomes.sent.clear()
        self._waiting.append(self._executor.submit(self._commit_in_background, group))

    def _commit_in_background(self, group: Outcomes) -> SendCounts:
        # Counted by the caller's thread (drain), not here: `counts` is not shared.
        counts = SendCounts()
        commit_outcomes(self.sessions, group, self.now, counts)
        return counts

    def _collect(self, *, block: bool) -> None:
        while self._waiting and (block or self._waiting[0].done()):
            self.counts.add(self._waiting.popleft().result())  # re-raises its error

    def drain(self) -> None:
        """Return once every outcome handed over is committed (raises a commit's error)."""
        self._collect(block=True)

    def close(self) -> None:
        try:
            self.drain()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)


def _not_sendable_now(session: Session, claims: Sequence[Claim]) -> dict[int, str]:
    """The people behind `claims` who are no longer active, read after the claim committed: a
    STOP, a pause or a close may have landed while the claim was being made. Usually empty."""
    people = {c.participant_id for c in claims if c.participant_id is not None}
    if not people:
        return {}
    rows = session.execute(
        select(Participant.id, Participant.status).where(
            in_ids(session, Participant.id, people), Participant.status != "active"
        )
    ).all()
    return {row.id: row.status for row in rows}


def _held_for_evidence(session: Session, claims: Sequence[Claim]) -> dict[int, datetime | None]:
    """The people behind `claims` whose texts are held for lack of consent evidence now (the
    program may have begun requiring it since the claim), with when each last texted (a staff
    reply to someone who texted in the last day answers them). Usually empty."""
    people = {c.participant_id for c in claims if c.participant_id is not None}
    held = consent_evidence.held_for_evidence(session, people)
    if not held:
        return {}
    last = whatsapp_window.last_inbound(session, held)
    return {pid: last.get(pid) for pid in held}


def _may_leave(
    claim: Claim,
    status: str | None,
    instant: datetime,
    quiet: sendability.QuietHours,
    program_zone: ZoneInfo,
    held: dict[int, datetime | None] | None = None,
) -> tuple[bool, bool]:
    """(may this message leave at `instant`, is the reason that time has run out): the
    claim's rules (sendability.decide) applied to the person as they are now and to the
    clock as it is now, with `held`: the people held for lack of consent evidence now. A
    hold ends the tick's sending like the clock does (the next tick's claim, with a fresh
    `now`, decides: a staff reply that answered a text at the claim may not at the last
    look, and the same `now` would claim it again)."""
    hold = None
    if held and claim.participant_id in held:
        hold = sendability.hold_for(
            claim.purpose,
            now=instant,
            paused_until=None,
            crisis_open=False,
            evidence_missing=True,
            last_inbound=held[claim.participant_id],
        )
    verdict = sendability.decide(
        instant,
        status=status,
        purpose=claim.purpose,
        not_after=claim.not_after,
        zone=claim.zone or program_zone,
        quiet=quiet,
        ignore_quiet_hours=claim.ignore_quiet_hours,
        hold=hold,
    )
    if verdict is sendability.SEND:
        return True, False
    return False, verdict.action != "cancelled"


def _tick_clock(now: datetime, limiter: RateLimiter | None) -> Callable[[], datetime]:
    """The time as the tick goes on: its `now` plus the time spent since (on the limiter's
    clock, which tests can drive). A tick that sends for minutes is judged by this, not by the
    instant it started."""
    clock = limiter.clock if limiter is not None else time.monotonic
    started = clock()
    return lambda: now + timedelta(seconds=clock() - started)


def send_batch(
    sessions: sessionmaker[Session],
    transport: Transport,
    now: datetime,
    claims: Sequence[Claim],
    *,
    worker_id: str,
    limiter: RateLimiter | None,
    counts: SendCounts,
    config: Config,
    should_stop: Callable[[], bool] = lambda: False,
    current_time: Callable[[], datetime] | None = None,
    writer: OutcomeWriter | None = None,
) -> bool:
    """Send claimed messages, each at its rate slot; commit outcomes in groups; give back
    the claims never handed to the transport when stopped early. Just before each request a
    last look (see _may_leave) re-applies the claim's rules to the person's status now and to
    the time now; a claim that fails it, and every claim after it, is given back for the
    claim to decide again. Returns True when the time has run out for this tick (quiet hours
    began or a window closed since `now`): its caller stops, and the next tick, with a fresh
    `now`, decides. Outcomes go through `writer` (send_due's, which may commit successes in
    the background); without one they are committed here before returning."""
    own_writer = writer is None
    writer = writer or OutcomeWriter(sessions, now, counts, background=False)
    outcomes = Outcomes()
    handed = 0
    last_commit = time.monotonic()
    current_time = current_time or _tick_clock(now, limiter)
    with sessions() as session:  # one connection for these reads
        not_active = _not_sendable_now(session, claims)
        held = _held_for_evidence(session, claims)
        quiet = sendability.quiet_hours(session)
    program_zone = ZoneInfo(config.program_timezone)
    out_of_time = halted = False
    handed_ids: set[int] = set()
    marked_upto = 0
    try:
        for index, claim in enumerate(claims):
            if should_stop():
                break
            if limiter is not None:
                # A missed slot (see RateLimiter) is not used: the claim waits for another.
                while not should_stop():
                    if outcomes and limiter.reserve_at() - limiter.clock() > FLUSH_GAP_SECONDS:
                        # before a just-in-time reservation's wait (see RateLimiter)
                        writer.commit(outcomes)
                        last_commit = time.monotonic()
                    slot = limiter.next_slot(len(claims) - index)
                    if outcomes and slot - limiter.clock() > FLUSH_GAP_SECONDS:
                        writer.commit(outcomes)  # while we wait anyway
                        last_commit = time.monotonic()
                    if limiter.wait_for(slot):
                        break
                else:
                    break  # stopped before this claim got a slot: it is given back below
            status = not_active.get(claim.participant_id) if claim.participant_id else None
            may_leave, out_of_time = _may_leave(
                claim, status, current_time(), quiet, program_zone, held
            )
            if not may_leave:
                break  # this claim and the rest are given back below
            if index >= marked_upto:
                group = claims[index : index + _hand_group(limiter)]
                with session_scope(sessions) as session:  # committed before the sends
                    handed_ids |= mark_handed(session, group, worker_id, current_time())
                marked_upto = index + len(group)
            # From here on the outcome of this claim may be unknown: it is never given back.
            handed += 1
            if claim.message_id not in handed_ids:
                continue  # no longer ours (recovered while this worker stalled): never sent
            try:
                result = transport.send(claim.request)
            except TransportError as exc:
                outcomes.errors.append((claim, exc))
                if exc.halt:
                    halted = True  # the account cannot send: the pass stops
                    break
            except Exception as exc:
                # Not a classified transport error: we cannot know whether the request left.
                outcomes.errors.append(
                    (
                        claim,
                        TransportError(
                            f"unexpected {type(exc).__name__}", permanent=False, request_sent=True
                        ),
                    )
                )
            else:
                outcomes.sent.append((claim, result))
            if time.monotonic() - last_commit >= FLUSH_SECONDS:
                writer.commit(outcomes)
                last_commit = time.monotonic()
    finally:
        try:
            writer.commit(outcomes)
            if own_writer:
                writer.close()
        finally:
            if handed < len(claims):
                with session_scope(sessions) as session:
                    release(session, claims[handed:], worker_id)
    return out_of_time or halted


def send_due(
    sessions: sessionmaker[Session],
    transport: Transport,
    config: Config,
    now: datetime,
    *,
    worker_id: str,
    limiter: RateLimiter | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_messages: int | None = None,
    batch: int | None = None,
    enqueue: EnqueueStep = enqueue_due,
) -> SendCounts:
    """Recover dead claims, then send batches until nothing is due, `max_messages` rows were
    looked at, or `should_stop()` (SIGTERM) says so. Each batch is either outbox rows already
    waiting (retries, replies, pages, a person's second text), claimed by claim_batch, or,
    once none is due, due planned contacts, inserted already claimed by `enqueue` (enqueue_due;
    a test may wrap it). `batch` overrides the batch size (what the limiter's rate sends in
    CLAIM_WINDOW_SECONDS, else BATCH)."""
    counts = SendCounts()
    current_time = _tick_clock(now, limiter)
    renderer = Renderer()  # templates compiled and bodies rendered once per tick
    with session_scope(sessions) as session:
        counts.unknown += recover_stale(session, now)
    if batch is None:
        batch = limiter.batch_size() if limiter is not None else BATCH
    looked = 0
    pending = True  # outbox rows may be waiting
    contacts = True  # planned contacts may be due
    with sessions() as session:
        background = is_postgresql(session)  # SQLite has one writer at a time anyway
    writer = OutcomeWriter(sessions, now, counts, background=background)
    upcoming = ReadAhead(sessions, enqueue) if background else None
    if upcoming is not None:
        writer.before_errors = upcoming.discard
    try:
        while not should_stop():
            limit = batch if max_messages is None else min(batch, max_messages - looked)
            if limit <= 0:
                break
            claims: list[Claim] = []
            seen = 0
            step = upcoming.take() if upcoming is not None else None  # claimed now
            if step is None:
                if pending:
                    writer.drain()  # a person's next text is judged after the last outcome
                with session_scope(sessions) as session:
                    if pending:
                        claims, seen = claim_batch(
                            session,
                            now,
                            worker_id,
                            config,
                            counts,
                            limit,
                            claimed_at=current_time(),
                        )
                        pending = seen > 0
                    if not pending and contacts:
                        step = enqueue(
                            session,
                            now,
                            config,
                            limit,
                            renderer,
                            claimed_by=worker_id,
                            claimed_at=current_time(),
                        )
            if step is not None:
                counts.add(step.counts)
                claims, seen, contacts = step.claims, step.looked, step.more
                pending = step.pending > 0
            if seen == 0:
                break
            looked += seen
            if claims:
                next_limit = batch if max_messages is None else min(batch, max_messages - looked)
                if upcoming is not None and contacts and not pending and next_limit > 0:
                    upcoming.start(
                        now, config, next_limit, renderer, worker_id, claimed_at=current_time()
                    )
                out_of_time = send_batch(
                    sessions,
                    transport,
                    now,
                    claims,
                    worker_id=worker_id,
                    limiter=limiter,
                    counts=counts,
                    config=config,
                    should_stop=should_stop,
                    current_time=current_time,
                    writer=writer,
                )
                if out_of_time:
                    break  # `now` is stale (or the account cannot send): the next tick decides
    finally:
        try:
            if upcoming is not None:
                upcoming.close()  # a batch read ahead and not taken is rolled back, unclaimed
        finally:
            writer.close()  # every outcome committed before the tick goes on (the sweep)
    with session_scope(sessions) as session:
        account_errors.after_pass(session, counts, now, config)
    return counts


def _hand_group(limiter: RateLimiter | None) -> int:
    """How many claims are marked handed in one commit: about what the rate sends in
    HAND_AHEAD_SECONDS (one at a time at low rates, where the wait for a slot dwarfs the
    commit), so a crash leaves at most that many claims `unknown` that never left."""
    if limiter is None:
        return HAND_GROUP_UNLIMITED
    return max(1, int(limiter.rate * HAND_AHEAD_SECONDS))
