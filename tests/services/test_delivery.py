from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.models import EarlyStatusCallback, Flag, OutboundMessage, Participant
from bot.services import delivery
from bot.services.delivery import EARLY_CALLBACK_TTL, apply_early_callbacks, apply_status
from bot.services.settings import DEFAULT_SETTINGS, set_setting
from tests.factories import make_participant, make_user

_n = iter(range(1, 10**6))


def _sent(
    session: Session,
    now: datetime,
    participant: Participant | None = None,
    status: str = "queued",
    **extra: object,
) -> OutboundMessage:
    n = next(_n)
    values: dict[str, object] = {"provider_sid": f"SM{n:032d}", **extra}
    message = OutboundMessage(
        idempotency_key=f"test:{n}",
        participant_id=participant.id if participant else None,
        purpose="checkin" if participant else "page",
        channel="sms",
        to_address=participant.phone if participant else "+12025550100",
        body="hi",
        status=status,
        send_after=now,
        created_at=now,
        **values,
    )
    session.add(message)
    session.flush()
    return message


def _apply(
    session: Session, message: OutboundMessage, status: str, now: datetime, code: str | None = None
) -> str:
    assert message.provider_sid is not None
    apply_status(
        session, provider_sid=message.provider_sid, twilio_status=status, error_code=code, now=now
    )
    session.refresh(message)
    return message.status


@pytest.mark.parametrize(
    ("sequence", "final"),
    [
        (["queued", "sent", "delivered"], "delivered"),
        (["delivered", "sent", "queued"], "delivered"),
        (["sent", "queued"], "sent"),
        (["undelivered", "delivered"], "undelivered"),
        (["failed", "sent"], "failed"),
        (["read"], "delivered"),
        (["sending", "accepted"], "queued"),
    ],
)
def test_status_only_moves_forward(
    session: Session, now: datetime, sequence: list[str], final: str
) -> None:
    message = _sent(session, now, make_participant(session, now))
    for step, status in enumerate(sequence):
        _apply(session, message, status, now + timedelta(seconds=step))
    assert message.status == final


def test_a_callback_resolves_an_unknown_send(session: Session, now: datetime) -> None:
    message = _sent(session, now, make_participant(session, now), status="unknown")
    assert _apply(session, message, "delivered", now) == "delivered"


def test_unknown_statuses_are_ignored(session: Session, now: datetime) -> None:
    message = _sent(session, now, make_participant(session, now))
    assert _apply(session, message, "teleported", now) == "queued"


def test_the_error_code_is_stored_even_when_it_arrives_late(
    session: Session, now: datetime
) -> None:
    message = _sent(session, now, make_participant(session, now))
    _apply(session, message, "failed", now)
    _apply(session, message, "failed", now, code="30006")
    assert (message.status, message.error_code) == ("failed", 30006)


def test_21610_opts_the_participant_out_and_cancels_what_is_pending(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    pending = _sent(session, now, person, status="pending", provider_sid=None)
    message = _sent(session, now, person)
    _apply(session, message, "undelivered", now, code="21610")
    session.refresh(person)
    session.refresh(pending)
    assert person.status == "opted_out" and person.opted_out_at == now
    assert pending.status == "cancelled"
    flag = session.scalars(select(Flag)).one()
    assert (flag.reason, flag.severity) == ("opted_out", "info")


@pytest.mark.parametrize(
    "code", ["30003", "30004", "30005", "30006", "30007", "30008", "21211", "21614"]
)
def test_carrier_failures_raise_one_high_delivery_failed_flag(
    session: Session, now: datetime, code: str
) -> None:
    person = make_participant(session, now)
    for step in range(2):
        message = _sent(session, now, person)
        _apply(session, message, "undelivered", now + timedelta(minutes=step), code=code)
        # The same callback again counts nothing more.
        _apply(session, message, "undelivered", now + timedelta(minutes=step), code=code)
    flag = session.scalars(select(Flag)).one()
    assert (flag.reason, flag.severity, flag.occurrences) == ("delivery_failed", "high", 2)


def test_the_failure_codes_come_from_the_settings(session: Session, now: datetime) -> None:
    escalation = dict(DEFAULT_SETTINGS["escalation"], delivery_failed_codes=[30001])
    set_setting(session, "escalation", escalation, now=now, user_id=None)
    person = make_participant(session, now)
    _apply(session, _sent(session, now, person), "failed", now, code="30003")
    assert session.scalars(select(Flag)).all() == []
    _apply(session, _sent(session, now, person), "failed", now, code="30001")
    assert session.scalars(select(Flag.reason)).all() == ["delivery_failed"]


def test_a_failed_page_flags_no_participant(session: Session, now: datetime) -> None:
    user = make_user(session, now)
    page = _sent(session, now, None, user_id=user.id)
    assert _apply(session, page, "undelivered", now, code="30003") == "undelivered"
    assert session.scalars(select(Flag)).all() == []


def _early(session: Session, sid: str, status: str, now: datetime, code: str | None = None) -> None:
    outcome = apply_status(
        session, provider_sid=sid, twilio_status=status, error_code=code, now=now
    )
    assert not outcome.known


def _record_sid(sessions: sessionmaker[Session], message_id: int, sid: str) -> None:
    """What the sender does once Twilio has answered the send."""
    with sessions.begin() as session:
        message = session.get_one(OutboundMessage, message_id)
        message.provider_sid, message.status = sid, "queued"


def test_a_failure_reported_before_the_sid_was_recorded_is_applied_and_flagged_later(
    sessions: sessionmaker[Session], session: Session, now: datetime
) -> None:
    # Twilio's callback can beat the sender's commit of the SID it just got.
    person = make_participant(session, now)
    message = _sent(session, now, person, status="sending", provider_sid=None)
    _early(session, "SMearly", "undelivered", now, code="30003")
    assert session.scalars(select(Flag)).all() == []
    session.commit()
    _record_sid(sessions, message.id, "SMearly")
    assert apply_early_callbacks(sessions, now + timedelta(minutes=1)) == 1
    session.expire_all()
    message = session.get_one(OutboundMessage, message.id)
    assert (message.status, message.error_code) == ("undelivered", 30003)
    assert message.status_updated_at == now  # when Twilio said so, not when the tick ran
    flag = session.scalars(select(Flag)).one()
    assert (flag.reason, flag.participant_id) == ("delivery_failed", person.id)
    assert session.scalars(select(EarlyStatusCallback)).all() == []
    session.commit()  # (SQLite: a reader here would hold the write lock)
    # Applied once: running again finds nothing and raises nothing more.
    assert apply_early_callbacks(sessions, now + timedelta(minutes=2)) == 0
    assert session.scalars(select(Flag)).one().occurrences == 1


def test_an_early_carrier_stop_opts_the_person_out_when_applied(
    sessions: sessionmaker[Session], session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    message = _sent(session, now, person, status="sending", provider_sid=None)
    _early(session, "SMstop", "undelivered", now, code="21610")
    session.commit()
    _record_sid(sessions, message.id, "SMstop")
    apply_early_callbacks(sessions, now)
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "opted_out"


def test_early_callbacks_are_applied_in_the_order_they_came(
    sessions: sessionmaker[Session], session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    message = _sent(session, now, person, status="sending", provider_sid=None)
    for status in ("sent", "delivered", "queued"):
        _early(session, "SMorder", status, now)
    session.commit()
    _record_sid(sessions, message.id, "SMorder")
    assert apply_early_callbacks(sessions, now) == 3
    session.expire_all()
    assert session.get_one(OutboundMessage, message.id).status == "delivered"


def test_a_callback_that_cannot_be_applied_is_dropped_and_the_others_still_apply(
    sessions: sessionmaker[Session],
    session: Session,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One bad row must not fail every tick (and the sweep after it) forever.
    person = make_participant(session, now)
    bad = _sent(session, now, person, status="sending", provider_sid=None)
    good = _sent(session, now, person, status="sending", provider_sid=None)
    _early(session, "SMbad", "delivered", now)
    _early(session, "SMgood", "delivered", now)
    session.commit()
    _record_sid(sessions, bad.id, "SMbad")
    _record_sid(sessions, good.id, "SMgood")
    real = delivery.apply_status

    def failing_for_one(session: Session, *, provider_sid: str, **rest: Any) -> Any:
        if provider_sid == "SMbad":
            raise RuntimeError("cannot apply")
        return real(session, provider_sid=provider_sid, **rest)

    monkeypatch.setattr(delivery, "apply_status", failing_for_one)
    assert apply_early_callbacks(sessions, now) == 1
    session.expire_all()
    assert session.get_one(OutboundMessage, good.id).status == "delivered"
    assert session.get_one(OutboundMessage, bad.id).status == "queued"
    assert session.scalars(select(EarlyStatusCallback)).all() == []


def test_an_error_code_no_integer_can_hold_is_not_stored(session: Session, now: datetime) -> None:
    message = _sent(session, now, make_participant(session, now))
    assert _apply(session, message, "failed", now, code="99999999999") == "failed"
    assert message.error_code is None
    _early(session, "SMhuge", "failed", now, code="99999999999")
    session.flush()
    assert session.scalars(select(EarlyStatusCallback.error_code)).one() is None


def test_a_callback_for_a_sid_that_never_turns_up_is_dropped_after_a_day(
    sessions: sessionmaker[Session], session: Session, now: datetime
) -> None:
    _early(session, "SMother", "delivered", now)
    session.commit()
    assert apply_early_callbacks(sessions, now + EARLY_CALLBACK_TTL) == 0
    assert len(session.scalars(select(EarlyStatusCallback)).all()) == 1  # still waiting
    session.commit()
    assert apply_early_callbacks(sessions, now + EARLY_CALLBACK_TTL + timedelta(seconds=1)) == 0
    session.expire_all()
    assert session.scalars(select(EarlyStatusCallback)).all() == []
