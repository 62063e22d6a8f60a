"""Expectations: "reply by T" after a check-in, "confirm by T" after an appointment reminder.

They are made set-based from sent outbox rows (the sweep calls `create_expectations` before it
looks for missed ones), satisfied by replies and confirmations, and cancelled by opt-out. On
PostgreSQL the sender makes the "reply by" ones already as it records its check-ins as sent
(`create_reply_expectations`, the same statement restricted to those texts); the sweep's pass
is then the safety net that finds whatever that missed.
The welcome creates none (DESIGN.md "Enrolment").

Rules (program settings, `escalation`):
- a check-in sent at S expects a reply by S + `reply_window_hours`;
- the first reminder sent for an appointment (per appointment version, so a moved appointment
  gets a fresh one) expects a confirmation by starts_at − `confirm_by_hours_before`. When that
  first reminder went out after that moment (an appointment imported late), the person gets
  until halfway between the reminder and the appointment, so nobody is flagged for not answering
  a text they got a minute ago.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Interval,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from bot.bulk import in_ids, insert_ignoring_conflicts
from bot.db import is_postgresql
from bot.models import (
    Appointment,
    Expectation,
    Flag,
    OutboundMessage,
    Participant,
    PlannedContact,
)
from bot.models.base import UTCDateTime
from bot.services.flags import resolve_flag
from bot.services.settings import get_setting

# Outbox statuses that mean the text left us and was accepted (Twilio's own statuses). A text
# that later turns undelivered/failed is cancelled at its deadline instead of counted as missed.
ACCEPTED_STATUSES = ("queued", "sent", "delivered")
UNDELIVERED_STATUSES = ("undelivered", "failed")
# How far back the sweep looks for sent texts without an expectation. It only has to cover the
# longest time the sweep might not run (a worker down over a long weekend); it bounds the cost
# of the look-up by recent traffic instead of by the whole history.
LOOKBACK = timedelta(days=7)


@dataclass
class CreatedCounts:
    reply: int = 0
    confirm: int = 0
    superseded: int = 0


def _insert_ignoring_conflicts(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert expectations; a row another sweep inserted first (same message, same appointment
    version) is skipped by the database, so two sweeps at once cannot make twins."""
    if not rows:
        return 0
    return insert_ignoring_conflicts(session, cast(Table, Expectation.__table__), rows)


def _insert_replies_set_based(
    session: Session, now: datetime, reply_window: timedelta, recent: ColumnElement[bool]
) -> int:
    """PostgreSQL: the "reply by" rows for the check-ins matched by `recent`, made by the
    database from the outbox rows (the same rows and values as the portable path); a row
    another sweep inserted first is skipped. Returns how many were inserted."""
    rows = (
        select(
            OutboundMessage.participant_id,
            literal("reply", String()),
            OutboundMessage.id,
            literal(now, UTCDateTime()),
            # As a number of seconds, which PostgreSQL keeps as hours (48:00:00): a timedelta
            # of whole days binds as "2 days", added as calendar days in the session's
            # TimeZone, an hour short or long across a DST change where that is not UTC.
            OutboundMessage.sent_at
            + sql_cast(literal(f"{reply_window.total_seconds()} seconds", String()), Interval()),
            literal("pending", String()),
        )
        .join(Participant, Participant.id == OutboundMessage.participant_id)
        .where(OutboundMessage.purpose == "checkin", recent)
        # The sort reads every row before the first insert: otherwise the anti-join in `recent`
        # may probe expectations (by a scan, when its statistics say empty) while this very
        # statement fills it, which was 2 s instead of 0.4 s for 18,700 rows.
        .order_by(OutboundMessage.id)
    )
    insert = (
        postgresql.insert(cast(Table, Expectation.__table__))
        .from_select(
            ["participant_id", "kind", "outbound_message_id", "created_at", "due_at", "state"],
            rows,
        )
        .on_conflict_do_nothing()
        # SQLAlchemy reports -1 for an INSERT … SELECT unless asked to keep the driver's count.
        .execution_options(preserve_rowcount=True)
    )
    result = cast(CursorResult[Any], session.execute(insert))
    return max(result.rowcount or 0, 0)


def _reply_window(session: Session) -> timedelta:
    return timedelta(hours=float(get_setting(session, "escalation")["reply_window_hours"]))


def _awaiting(now: datetime) -> ColumnElement[bool]:
    """The texts an expectation may be made for (with Participant joined): sent and accepted
    since LOOKBACK before `now` and up to `now`, to a person still active, with none yet."""
    return and_(
        OutboundMessage.sent_at >= now - LOOKBACK,
        OutboundMessage.sent_at <= now,
        OutboundMessage.status.in_(ACCEPTED_STATUSES),
        Participant.status == "active",
        ~exists().where(Expectation.outbound_message_id == OutboundMessage.id),
    )


def create_reply_expectations(session: Session, now: datetime, message_ids: Sequence[int]) -> int:
    """PostgreSQL: the "reply by" expectations for these texts only, exactly the rows
    `create_expectations` would make for them at `now` (check-ins among them, accepted, to
    an active person, without one yet; due the reply window after their sending). The sender
    calls it in the transaction that records them as sent, so the sweep finds nothing left
    to do for them. Returns how many were inserted."""
    if not message_ids:
        return 0
    return _insert_replies_set_based(
        session,
        now,
        _reply_window(session),
        and_(in_ids(session, OutboundMessage.id, message_ids), _awaiting(now)),
    )


def create_expectations(session: Session, now: datetime) -> CreatedCounts:
    """Make the expectations for check-ins and reminders sent since the last sweep.

    One select of the recently sent texts that have none yet (an index range on
    (purpose, sent_at) and an anti-join on the unique message id), one bulk insert.
    """
    rules = get_setting(session, "escalation")
    reply_window = _reply_window(session)
    confirm_by = timedelta(hours=float(rules["confirm_by_hours_before"]))
    counts = CreatedCounts()
    recent = _awaiting(now)

    if is_postgresql(session):
        # One INSERT … SELECT: a tick's 20,000 check-ins never travel to Python and back.
        counts.reply = _insert_replies_set_based(session, now, reply_window, recent)
    else:
        checkins = session.execute(
            select(OutboundMessage.id, OutboundMessage.participant_id, OutboundMessage.sent_at)
            .join(Participant, Participant.id == OutboundMessage.participant_id)
            .where(OutboundMessage.purpose == "checkin", recent)
        ).all()
        reply_rows = [
            {
                "participant_id": participant_id,
                "kind": "reply",
                "outbound_message_id": message_id,
                "created_at": now,
                # sent_at is set: the query only looks at texts sent since LOOKBACK
                "due_at": cast(datetime, sent_at) + reply_window,
                "state": "pending",
            }
            for message_id, participant_id, sent_at in checkins
        ]
        counts.reply = _insert_ignoring_conflicts(session, reply_rows)

    done = aliased(Expectation)
    reminders = session.execute(
        select(
            OutboundMessage.id,
            OutboundMessage.participant_id,
            OutboundMessage.sent_at,
            Appointment.id,
            Appointment.version,
            Appointment.starts_at,
            Appointment.status,
        )
        .join(Participant, Participant.id == OutboundMessage.participant_id)
        .join(PlannedContact, PlannedContact.id == OutboundMessage.planned_contact_id)
        .join(Appointment, Appointment.id == PlannedContact.appointment_id)
        .where(
            OutboundMessage.purpose == "reminder",
            recent,
            ~exists().where(
                done.appointment_id == Appointment.id,
                done.appointment_version == Appointment.version,
            ),
        )
        .order_by(OutboundMessage.sent_at, OutboundMessage.id)
    ).all()
    confirm_rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for message_id, participant_id, sent_at, appt_id, version, starts_at, status in reminders:
        if appt_id in seen:  # only the first reminder per appointment version
            continue
        seen.add(appt_id)
        sent_at = cast(datetime, sent_at)
        due_at = starts_at - confirm_by
        if due_at <= sent_at:
            due_at = sent_at + (starts_at - sent_at) / 2
        # Already answered (or called off) before the sweep saw the reminder: record it as
        # settled so the later reminders for this version are not looked at again.
        state = {"confirmed": "satisfied", "declined": "cancelled", "cancelled": "cancelled"}.get(
            status, "pending"
        )
        confirm_rows.append(
            {
                "participant_id": participant_id,
                "kind": "confirm",
                "outbound_message_id": message_id,
                "appointment_id": appt_id,
                "appointment_version": version,
                "created_at": now,
                "due_at": due_at,
                "state": state,
                "resolved_at": None if state == "pending" else now,
            }
        )
    counts.confirm = _insert_ignoring_conflicts(session, confirm_rows)
    if seen:
        # A moved appointment's old "confirm by" no longer applies.
        counts.superseded = _cancel(
            session,
            now,
            Expectation.kind == "confirm",
            Expectation.appointment_id.in_(seen),
            Expectation.appointment_version
            < select(Appointment.version)
            .where(Appointment.id == Expectation.appointment_id)
            .scalar_subquery(),
        )
    return counts


def _cancel(session: Session, now: datetime, *conditions: Any) -> int:
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Expectation)
            .where(Expectation.state == "pending", *conditions)
            .values(state="cancelled", resolved_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    return max(result.rowcount or 0, 0)


def _satisfy(session: Session, now: datetime, *conditions: Any) -> int:
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Expectation)
            .where(Expectation.state == "pending", *conditions)
            .values(state="satisfied", resolved_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    return max(result.rowcount or 0, 0)


# What a text from a participant does, as Core statements on the tables: this runs for every
# text that comes in (bot.services.inbound), and the ORM's bookkeeping for an UPDATE cost more
# than the UPDATE itself. Built once; SQLAlchemy caches their compiled form.
_expectations = cast(Table, Expectation.__table__)
_flags = cast(Table, Flag.__table__)
_participants = cast(Table, Participant.__table__)
_SATISFY_REPLIES = (
    update(_expectations)
    .where(
        _expectations.c.participant_id == bindparam("person_id"),
        _expectations.c.kind == "reply",
        _expectations.c.state == "pending",
    )
    .values(state="satisfied", resolved_at=bindparam("at"))
)
_OPEN_NO_REPLY_FLAG = (
    select(_flags.c.id)
    .where(
        _flags.c.participant_id == bindparam("person_id"),
        _flags.c.reason == "no_reply",
        _flags.c.state != "resolved",
    )
    .limit(1)
)
# The same, only while the person has not opted out, as they are when the statement runs.
_NOT_OPTED_OUT = exists().where(
    _participants.c.id == bindparam("person_id"), _participants.c.status != "opted_out"
)
_SATISFY_REPLIES_UNLESS_OPTED_OUT = _SATISFY_REPLIES.where(_NOT_OPTED_OUT)
_OPEN_NO_REPLY_FLAG_UNLESS_OPTED_OUT = _OPEN_NO_REPLY_FLAG.where(_NOT_OPTED_OUT)


def _reply_in_one(satisfy: Any, find_flag: Any) -> Any:
    """PostgreSQL: both in one statement (the UPDATE as a CTE), one round trip instead of two:
    (how many expectations were satisfied, the open `no_reply` flag's id or NULL)."""
    satisfied = satisfy.returning(_expectations.c.id).cte("satisfied")
    return select(
        select(func.count()).select_from(satisfied).scalar_subquery(),
        find_flag.scalar_subquery(),
    )


_REPLY_IN_ONE = {
    False: _reply_in_one(_SATISFY_REPLIES, _OPEN_NO_REPLY_FLAG),
    True: _reply_in_one(_SATISFY_REPLIES_UNLESS_OPTED_OUT, _OPEN_NO_REPLY_FLAG_UNLESS_OPTED_OUT),
}


def reply_unless_flagged(together_with: Update) -> Select[Any]:
    """PostgreSQL only: what `on_participant_reply(..., unless_opted_out=True)` does, plus the
    caller's own UPDATE `together_with`, in one statement, for the common case where the reply
    resolves no flag. Built once by the caller (bot.services.inbound); its parameters are
    `person_id` and `at` and those of `together_with`.

    It returns (the open `no_reply` flag's id, expectations satisfied, rows `together_with`
    changed). When a flag is open it changes nothing at all (the flag is resolved in the same
    transaction as the rest: `on_participant_reply`)."""
    flag = _OPEN_NO_REPLY_FLAG_UNLESS_OPTED_OUT.cte("open_flag")
    no_flag = ~exists(select(flag.c.id))
    satisfied = (
        _SATISFY_REPLIES_UNLESS_OPTED_OUT.where(no_flag)
        .returning(_expectations.c.id)
        .cte("satisfied")
    )
    table = cast(Table, together_with.table)
    also = together_with.where(no_flag).returning(*table.primary_key.columns).cte("also")
    return select(
        select(flag.c.id).scalar_subquery(),
        select(func.count()).select_from(satisfied).scalar_subquery(),
        select(func.count()).select_from(also).scalar_subquery(),
    )


def on_participant_reply(
    session: Session, participant_id: int, now: datetime, *, unless_opted_out: bool = False
) -> int:
    """A text from the participant: their pending "reply by" expectations are satisfied and an
    unresolved `no_reply` flag is resolved automatically (an `auto_resolved` event says so).
    With `unless_opted_out`, nothing happens if the person has opted out (read by the
    statements, so a STOP committed a moment ago counts). Returns how many expectations were
    satisfied."""
    # Core statements do not autoflush: let them see what the caller changed (START's opt-in).
    session.flush()
    params = {"person_id": participant_id, "at": now}
    if is_postgresql(session):
        satisfied, flag_id = session.execute(_REPLY_IN_ONE[unless_opted_out], params).one()
    else:
        satisfy, find_flag = (
            (_SATISFY_REPLIES_UNLESS_OPTED_OUT, _OPEN_NO_REPLY_FLAG_UNLESS_OPTED_OUT)
            if unless_opted_out
            else (_SATISFY_REPLIES, _OPEN_NO_REPLY_FLAG)
        )
        result = cast(CursorResult[Any], session.execute(satisfy, params))
        satisfied = result.rowcount or 0
        flag_id = session.scalar(find_flag, params)
    flag = session.get(Flag, flag_id) if flag_id is not None else None
    if flag is not None:
        resolve_flag(
            session,
            flag,
            outcome="reached",
            note="The participant replied.",
            now=now,
            user_id=None,
            automatic=True,
        )
    return max(int(satisfied), 0)


def on_appointment_confirmed(session: Session, appointment: Appointment, now: datetime) -> int:
    """YES/C to a reminder: the appointment's "confirm by" is satisfied, and an unresolved
    `unconfirmed_appointment` flag is resolved automatically when every appointment it was
    raised for is now confirmed."""
    satisfied = _satisfy(
        session,
        now,
        Expectation.appointment_id == appointment.id,
        Expectation.kind == "confirm",
    )
    flag = session.scalars(
        select(Flag).where(
            Flag.participant_id == appointment.participant_id,
            Flag.reason == "unconfirmed_appointment",
            Flag.state != "resolved",
        )
    ).first()
    if flag is not None:
        # Another appointment this flag was raised for, still not confirmed, keeps it open.
        still_unconfirmed = session.scalar(
            select(
                exists().where(
                    Expectation.flag_id == flag.id,
                    Expectation.appointment_id == Appointment.id,
                    Appointment.id != appointment.id,
                    Appointment.status != "confirmed",
                )
            )
        )
        if not still_unconfirmed:
            resolve_flag(
                session,
                flag,
                outcome="no_action_needed",
                note="The participant confirmed the appointment.",
                now=now,
                user_id=None,
                automatic=True,
            )
    return satisfied


def on_appointment_answered(session: Session, appointment: Appointment, now: datetime) -> int:
    """NO to a reminder: an answer is what "confirm by" waits for, so it is satisfied (the
    `appointment_declined` flag, raised by inbound, asks a coach to reschedule)."""
    return _satisfy(
        session, now, Expectation.appointment_id == appointment.id, Expectation.kind == "confirm"
    )


def decide(session: Session, ids: Sequence[int], state: str, now: datetime) -> None:
    """The sweep's verdict on due expectations (satisfied, missed or cancelled), by id, in
    chunks of at most `chunk` ids per statement."""
    for start in range(0, len(ids), _DECIDE_CHUNK):
        session.execute(
            update(Expectation)
            .where(Expectation.id.in_(ids[start : start + _DECIDE_CHUNK]))
            .values(state=state, resolved_at=now)
            .execution_options(synchronize_session=False)
        )


# Bind parameters per IN list (SQLite's limit is 32766; smaller lists keep plans simple).
_DECIDE_CHUNK = 1000
_MARK_MISSED_PG = text(
    """
    UPDATE expectations SET state = 'missed', resolved_at = :now, flag_id = v.flag_id
    FROM unnest(CAST(:ids AS integer[]), CAST(:flag_ids AS integer[])) AS v(id, flag_id)
    WHERE expectations.id = v.id
    """
)


def mark_missed(session: Session, flag_of: Mapping[int, int], now: datetime) -> None:
    """The sweep's misses: each expectation (id → the flag it was counted on) is `missed` and
    points at that flag. The caller has locked the participants, so each flag is still the
    person's unresolved one for the reason."""
    if not flag_of:
        return
    ids = list(flag_of)
    if is_postgresql(session):
        # One statement for the whole batch.
        session.execute(
            _MARK_MISSED_PG, {"now": now, "ids": ids, "flag_ids": [flag_of[i] for i in ids]}
        )
        return
    # Each missed expectation points at its participant's unresolved flag for the reason
    # (exactly one, by the partial unique index): one UPDATE per chunk, no row-by-row.
    flag_for = (
        select(Flag.id)
        .where(
            Flag.participant_id == Expectation.participant_id,
            Flag.reason
            == case((Expectation.kind == "reply", "no_reply"), else_="unconfirmed_appointment"),
            Flag.state != "resolved",
        )
        .scalar_subquery()
    )
    for start in range(0, len(ids), _DECIDE_CHUNK):
        session.execute(
            update(Expectation)
            .where(Expectation.id.in_(ids[start : start + _DECIDE_CHUNK]))
            .values(state="missed", resolved_at=now, flag_id=flag_for)
            .execution_options(synchronize_session=False)
        )


def cancel_for_participant(session: Session, participant_id: int, now: datetime) -> int:
    """Opt-out (or closing a case): the person's open expectations are cancelled. No new ones
    are made while they are not active (`create_expectations` and the sweep check)."""
    return _cancel(session, now, Expectation.participant_id == participant_id)
