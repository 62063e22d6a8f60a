"""sweep(now): turn missed expectations into flags, then advance the escalation ladder.

Set-based: each batch is one select of due expectations (the (state, due_at) index, so the cost
grows with what is due, not with the population), a few bulk updates and inserts, and no query
per row. Safe with two sweeps at once:
- due expectations are claimed with FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite has one writer),
  so each is decided by exactly one sweep;
- the participants whose flags a batch touches are locked (FOR NO KEY UPDATE, in id order, so
  two sweeps cannot deadlock and inbound texts that reference them are not blocked), which
  serialises raising `no_reply`/`unconfirmed_appointment` for one person;
- the partial unique index (one unresolved flag per participant and reason) is the backstop: a
  flag insert that loses a race is skipped (ON CONFLICT DO NOTHING) and the winner's flag raised.

The flag semantics are bot.services.flags.raise_flag's, applied to many misses at once: the
first miss opens the flag, each further one counts an occurrence (`repeated`) or raises the
severity (`severity_raised`). `no_reply` is normal, high from `misses_before_high` misses in a
row (misses since the person's last reply); `unconfirmed_appointment` is normal. A flag that
becomes high starts its ladder (bot.services.ladder) in the same sweep.

`unanswered_step` does the same for texts waiting for a reply (bot.services.inbox): a
participant whose oldest waiting text is older than `unanswered_text_hours` gets one
`unanswered_text` flag, normal, raised to high once the text has waited 48 hours. A staff reply
or "no reply needed" resolves it (bot.services.inbox.end_wait), never the sweep.

Each batch is committed on its own (small steps), so a long backlog does not hold locks.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import and_, exists, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from bot.config import Config
from bot.db import is_postgresql
from bot.log import log_event
from bot.models import (
    Appointment,
    Expectation,
    Flag,
    FlagEvent,
    InboundMessage,
    OutboundMessage,
    Participant,
)
from bot.models.flags import SEVERITY_RANK, severity_for
from bot.services import expectations
from bot.services.expectations import UNDELIVERED_STATUSES, create_expectations
from bot.services.ladder import LADDER_SEVERITIES, advance_ladder
from bot.services.settings import get_setting

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
# A text waiting for a reply this long raises its `unanswered_text` flag to high.
UNANSWERED_HIGH_AFTER = timedelta(hours=48)
# Bind parameters per IN list (SQLite's limit is 32766; smaller lists keep plans simple).
_CHUNK = 1000
_T = TypeVar("_T")


@dataclass
class SweepCounts:
    created: int = 0
    satisfied: int = 0
    cancelled: int = 0
    missed: int = 0
    flags_opened: int = 0
    flags_raised: int = 0
    pages: int = 0
    pages_skipped: int = 0


@dataclass(frozen=True)
class _Due:
    id: int
    participant_id: int
    kind: str
    due_at: datetime


def _chunks(values: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _decide(row: Any) -> str:
    """satisfied, cancelled or missed, for one due expectation and what it depends on."""
    if row.participant_status != "active":
        return "cancelled"  # opted out, paused or closed: nobody is waiting for an answer
    if row.kind == "reply":
        if row.message_status in UNDELIVERED_STATUSES:
            return "cancelled"  # never arrived; delivery_failed says so instead
        # A reply that came before the expectation existed (or before inbound could mark it).
        return "satisfied" if row.replied else "missed"
    if row.appointment_status == "confirmed":
        return "satisfied"
    if row.appointment_status in ("declined", "cancelled") or row.appointment_status is None:
        return "cancelled"
    if row.appointment_version != row.expectation_version:
        return "cancelled"  # the appointment moved; its new version has its own expectation
    return "missed"


def _lock_participants(session: Session, participant_ids: list[int]) -> None:
    if not is_postgresql(session):
        return  # SQLite: BEGIN IMMEDIATE already made this the only writer
    for chunk in _chunks(sorted(participant_ids)):
        session.execute(
            select(Participant.id)
            .where(Participant.id.in_(chunk))
            .order_by(Participant.id)
            .with_for_update(key_share=True)
        ).all()


def _reply_streaks(session: Session, participant_ids: list[int]) -> dict[int, int]:
    """Reply expectations missed since each person's last satisfied one (before this batch)."""
    later = aliased(Expectation)
    last_reply = (
        select(func.max(later.due_at))
        .where(
            later.participant_id == Expectation.participant_id,
            later.kind == "reply",
            later.state == "satisfied",
        )
        .scalar_subquery()
    )
    streaks: dict[int, int] = {}
    for chunk in _chunks(participant_ids):
        rows = session.execute(
            select(Expectation.participant_id, func.count())
            .where(
                Expectation.participant_id.in_(chunk),
                Expectation.kind == "reply",
                Expectation.state == "missed",
                or_(last_reply.is_(None), Expectation.due_at > last_reply),
            )
            .group_by(Expectation.participant_id)
        ).all()
        streaks.update({pid: n for pid, n in rows})
    return streaks


def _unresolved_flags(
    session: Session, keys: Iterable[tuple[int, str]], *, lock: bool
) -> dict[tuple[int, str], Any]:
    by_reason: dict[str, list[int]] = defaultdict(list)
    for pid, reason in keys:
        by_reason[reason].append(pid)
    found: dict[tuple[int, str], Any] = {}
    for reason, pids in by_reason.items():
        for chunk in _chunks(sorted(pids)):
            query = (
                select(
                    Flag.id,
                    Flag.participant_id,
                    Flag.reason,
                    Flag.severity,
                    Flag.state,
                    Flag.occurrences,
                    Flag.ladder_step,
                    Flag.next_page_at,
                )
                .where(
                    Flag.participant_id.in_(chunk),
                    Flag.reason == reason,
                    Flag.state != "resolved",
                )
                .order_by(Flag.id)
            )
            if lock:
                query = query.with_for_update()
            for row in session.execute(query):
                found[(row.participant_id, row.reason)] = row
    return found


# PostgreSQL: one statement whatever the batch size. The rows travel as a few arrays (unnest)
# instead of thousands of bound rows, which is most of what inserting ~5,000 flags used to cost
# (per-row parameter processing and the ORM's batched INSERT ... RETURNING). A flag another
# process opened meanwhile hits the partial unique index and is skipped.
_INSERT_FLAGS_PG = text(
    """
    INSERT INTO flags (participant_id, reason, severity, state, occurrences, opened_at,
                       updated_at, ladder_step)
    SELECT v.participant_id, v.reason, v.severity, 'open', v.occurrences, :now, :now, 0
    FROM unnest(CAST(:participant_ids AS integer[]), CAST(:reasons AS text[]),
                CAST(:severities AS text[]), CAST(:occurrences AS integer[]))
         AS v(participant_id, reason, severity, occurrences)
    ORDER BY v.participant_id, v.reason
    ON CONFLICT (participant_id, reason) WHERE state <> 'resolved' DO NOTHING
    RETURNING id, participant_id, reason
    """
)
_INSERT_EVENTS_PG = text(
    """
    INSERT INTO flag_events (flag_id, at, kind, actor_user_id, detail)
    SELECT v.flag_id, :now, v.kind, NULL, CAST(v.detail AS json)
    FROM unnest(CAST(:flag_ids AS integer[]), CAST(:kinds AS text[]),
                CAST(:details AS text[])) WITH ORDINALITY AS v(flag_id, kind, detail, n)
    ORDER BY v.n
    """
)


def _insert_flags(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[int, str], int]:
    """Insert new flags, skipping any another process opened meanwhile; returns the ids of
    those inserted by (participant_id, reason)."""
    if not rows:
        return {}
    if is_postgresql(session):
        result = session.execute(
            _INSERT_FLAGS_PG,
            {
                "now": rows[0]["opened_at"],
                "participant_ids": [row["participant_id"] for row in rows],
                "reasons": [row["reason"] for row in rows],
                "severities": [row["severity"] for row in rows],
                "occurrences": [row["occurrences"] for row in rows],
            },
        )
        return {(int(pid), str(reason)): int(fid) for fid, pid, reason in result}
    returning = (Flag.id, Flag.participant_id, Flag.reason)
    # The participants are locked, so a conflict needs a raiser outside the sweep; try the
    # plain insert (cheaper than ON CONFLICT's speculative insertion) and fall back.
    try:
        with session.begin_nested():
            result = session.execute(insert(Flag).returning(*returning), rows)
            return {(cast(int, pid), reason): fid for fid, pid, reason in result}
    except IntegrityError:
        pass
    dialect = session.get_bind().dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(Flag).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(Flag).on_conflict_do_nothing()
    else:  # pragma: no cover
        statement = insert(Flag)
    result = session.execute(statement.returning(*returning), rows)
    return {(cast(int, pid), reason): fid for fid, pid, reason in result}


def _raise_flags(
    session: Session,
    now: datetime,
    misses: list[_Due],
    rules: dict[str, Any],
    counts: SweepCounts,
) -> dict[int, int]:
    """raise_flag semantics for every miss at once; returns expectation id -> flag id."""
    participant_ids = sorted({m.participant_id for m in misses})
    _lock_participants(session, participant_ids)
    reply_pids = sorted({m.participant_id for m in misses if m.kind == "reply"})
    streaks = _reply_streaks(session, reply_pids) if reply_pids else {}
    high_after = int(rules["misses_before_high"])

    # Per (participant, reason): the misses in time order with the severity each one carries.
    groups: dict[tuple[int, str], list[tuple[_Due, str]]] = defaultdict(list)
    for miss in sorted(misses, key=lambda m: (m.due_at, m.id)):
        if miss.kind == "reply":
            streaks[miss.participant_id] = streaks.get(miss.participant_id, 0) + 1
            escalated = streaks[miss.participant_id] >= high_after
            severity = severity_for("no_reply", escalated=escalated)
            groups[(miss.participant_id, "no_reply")].append((miss, severity))
        else:
            reason = "unconfirmed_appointment"
            groups[(miss.participant_id, reason)].append((miss, severity_for(reason)))

    existing = _unresolved_flags(session, groups, lock=True)
    new_keys = [key for key in groups if key not in existing]
    new_rows = []
    for key in new_keys:
        severities = [severity for _, severity in groups[key]]
        top = max(severities, key=SEVERITY_RANK.__getitem__)
        new_rows.append(
            {
                "participant_id": key[0],
                "reason": key[1],
                "severity": top,
                "state": "open",
                "occurrences": len(severities),
                "opened_at": now,
                "updated_at": now,
                "ladder_step": 0,
            }
        )
    inserted = _insert_flags(session, new_rows)
    lost = [key for key in new_keys if key not in inserted]
    if lost:  # another process opened these meanwhile: raise theirs instead
        existing.update(_unresolved_flags(session, lost, lock=True))

    flag_of: dict[int, int] = {}
    events: list[dict[str, Any]] = []
    flag_updates: list[dict[str, Any]] = []
    for key, items in groups.items():
        if key in inserted:
            flag_id = inserted[key]
            current = items[0][1]
            events.append(_event(flag_id, now, "opened", {"severity": current}, items[0][0]))
            counts.flags_opened += 1
            rest = items[1:]
        else:
            row = existing[key]
            flag_id, current, rest = row.id, row.severity, items
        raised = False
        for miss, severity in rest:
            if SEVERITY_RANK[severity] > SEVERITY_RANK[current]:
                events.append(
                    _event(flag_id, now, "severity_raised", {"from": current, "to": severity}, miss)
                )
                current, raised = severity, True
            else:
                events.append(_event(flag_id, now, "repeated", None, miss))
        for miss, _ in items:
            flag_of[miss.id] = flag_id
        if raised:
            counts.flags_raised += 1
        if key not in inserted:
            row = existing[key]
            flag_updates.append(
                {
                    "id": flag_id,
                    "occurrences": row.occurrences + len(rest),
                    "severity": current,
                    "updated_at": now,
                }
            )
    if flag_updates:
        session.execute(update(Flag), flag_updates)
    if events:
        _insert_events(session, now, events)
    return flag_of


def _insert_events(session: Session, now: datetime, events: list[dict[str, Any]]) -> None:
    if not is_postgresql(session):
        session.execute(insert(FlagEvent), events)
        return
    session.execute(
        _INSERT_EVENTS_PG,
        {
            "now": now,
            "flag_ids": [event["flag_id"] for event in events],
            "kinds": [event["kind"] for event in events],
            "details": [json.dumps(event["detail"]) for event in events],
        },
    )


def _event(
    flag_id: int, now: datetime, kind: str, detail: dict[str, Any] | None, miss: _Due
) -> dict[str, Any]:
    return {
        "flag_id": flag_id,
        "at": now,
        "kind": kind,
        "actor_user_id": None,
        "detail": {**(detail or {}), "expectation_id": miss.id, "due_at": miss.due_at.isoformat()},
    }


def sweep_step(
    session: Session, now: datetime, counts: SweepCounts, *, limit: int = BATCH_SIZE
) -> bool:
    """Decide up to `limit` due expectations; returns whether more may be due."""
    rules = get_setting(session, "escalation")
    replied = exists().where(
        InboundMessage.participant_id == Expectation.participant_id,
        InboundMessage.received_at
        >= func.coalesce(OutboundMessage.sent_at, Expectation.created_at),
    )
    rows = session.execute(
        select(
            Expectation.id,
            Expectation.participant_id,
            Expectation.kind,
            Expectation.due_at,
            Expectation.appointment_version.label("expectation_version"),
            Participant.status.label("participant_status"),
            Appointment.status.label("appointment_status"),
            Appointment.version.label("appointment_version"),
            OutboundMessage.status.label("message_status"),
            and_(Expectation.kind == "reply", replied).label("replied"),
        )
        .join(Participant, Participant.id == Expectation.participant_id)
        .outerjoin(Appointment, Appointment.id == Expectation.appointment_id)
        .outerjoin(OutboundMessage, OutboundMessage.id == Expectation.outbound_message_id)
        .where(Expectation.state == "pending", Expectation.due_at <= now)
        .order_by(Expectation.due_at, Expectation.id)
        .limit(limit)
        .with_for_update(of=Expectation, skip_locked=True)
    ).all()
    if not rows:
        return False
    decided: dict[str, list[int]] = defaultdict(list)
    misses: list[_Due] = []
    for row in rows:
        state = _decide(row)
        decided[state].append(row.id)
        if state == "missed":
            misses.append(_Due(row.id, row.participant_id, row.kind, row.due_at))
    expectations.decide(session, decided["satisfied"], "satisfied", now)
    expectations.decide(session, decided["cancelled"], "cancelled", now)
    if misses:
        flag_of = _raise_flags(session, now, misses, rules, counts)
        expectations.mark_missed(session, {m.id: flag_of[m.id] for m in misses}, now)
    counts.satisfied += len(decided["satisfied"])
    counts.cancelled += len(decided["cancelled"])
    counts.missed += len(misses)
    return len(rows) == limit


def unanswered_step(
    session: Session, now: datetime, counts: SweepCounts, *, limit: int = BATCH_SIZE
) -> bool:
    """Raise `unanswered_text` for up to `limit` participants whose oldest text waiting for a
    reply is older than the setting, high once it has waited UNANSWERED_HIGH_AFTER; returns
    whether more may be due. Reads the inbox's partial index (waiting texts only)."""
    rules = get_setting(session, "escalation")
    after = timedelta(hours=float(rules.get("unanswered_text_hours", 24)))
    high_before = now - UNANSWERED_HIGH_AFTER
    already_high = exists().where(
        Flag.participant_id == InboundMessage.participant_id,
        Flag.reason == "unanswered_text",
        Flag.state != "resolved",
        Flag.severity == "high",
    )
    oldest = func.min(InboundMessage.received_at)
    rows = session.execute(
        select(InboundMessage.participant_id, oldest.label("since"))
        .where(
            InboundMessage.needs_reply.is_(True),
            InboundMessage.participant_id.is_not(None),
            InboundMessage.received_at <= now - after,
            ~already_high,
        )
        .group_by(InboundMessage.participant_id)
        .order_by(oldest, InboundMessage.participant_id)
        .limit(limit)
    ).all()
    if not rows:
        return False
    since = {int(row.participant_id): row.since for row in rows}
    _lock_participants(session, list(since))
    keys = [(pid, "unanswered_text") for pid in since]
    existing = _unresolved_flags(session, keys, lock=True)

    def severity(pid: int) -> str:
        return "high" if since[pid] <= high_before else "normal"

    new_rows = [
        {
            "participant_id": pid,
            "reason": "unanswered_text",
            "severity": severity(pid),
            "state": "open",
            "occurrences": 1,
            "opened_at": now,
            "updated_at": now,
            "ladder_step": 0,
        }
        for pid, reason in keys
        if (pid, reason) not in existing
    ]
    inserted = _insert_flags(session, new_rows)
    events: list[dict[str, Any]] = []
    flag_updates: list[dict[str, Any]] = []
    for (pid, _reason), flag_id in inserted.items():
        detail = {"severity": severity(pid), "waiting_since": since[pid].isoformat()}
        events.append(
            {
                "flag_id": flag_id,
                "at": now,
                "kind": "opened",
                "actor_user_id": None,
                "detail": detail,
            }
        )
        counts.flags_opened += 1
    for (pid, _reason), row in existing.items():
        if row.severity != "normal" or severity(pid) != "high":
            continue  # the same wait, already flagged as it stands
        flag_updates.append({"id": row.id, "severity": "high", "updated_at": now})
        events.append(
            {
                "flag_id": row.id,
                "at": now,
                "kind": "severity_raised",
                "actor_user_id": None,
                "detail": {
                    "from": "normal",
                    "to": "high",
                    "waiting_since": since[pid].isoformat(),
                },
            }
        )
        counts.flags_raised += 1
    if flag_updates:
        session.execute(update(Flag), flag_updates)
    if events:
        _insert_events(session, now, events)
    return len(rows) == limit


def sweep(
    session: Session,
    now: datetime,
    config: Config,
    *,
    batch_size: int = BATCH_SIZE,
) -> SweepCounts:
    """One pass: make expectations for newly sent texts, decide the due ones (missed → flags),
    then advance the ladder of urgent and high flags. Commits after each step.

    `config` (public URL, program zone and name for pages) is the caller's: domain code never
    reads the environment.
    """
    counts = SweepCounts()
    created = create_expectations(session, now)
    counts.created = created.reply + created.confirm
    counts.cancelled += created.superseded
    session.commit()
    while sweep_step(session, now, counts, limit=batch_size):
        session.commit()
    session.commit()
    while unanswered_step(session, now, counts, limit=batch_size):
        session.commit()
    session.commit()
    ladder = advance_ladder(session, now, config)
    counts.pages, counts.pages_skipped = ladder.pages, ladder.skipped
    session.commit()
    log_event(logger, "sweep", now=now, **vars(counts))
    return counts


__all__ = ["LADDER_SEVERITIES", "SweepCounts", "sweep", "sweep_step"]
