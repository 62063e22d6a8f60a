from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import EarlyStatusCallback, Flag, OutboundMessage, Participant
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


def test_a_failure_reported_before_the_sid_was_recorded_is_applied_and_flagged_later(
    session: Session, now: datetime
) -> None:
    # Twilio's callback can beat the sender's commit of the SID it just got.
    person = make_participant(session, now)
    message = _sent(session, now, person, status="sending", provider_sid=None)
    early = apply_status(
        session, provider_sid="SMearly", twilio_status="undelivered", error_code="30003", now=now
    )
    assert not early.known
    assert session.scalars(select(Flag)).all() == []
    message.provider_sid, message.status = "SMearly", "queued"  # the sender records the SID
    session.flush()
    assert apply_early_callbacks(session, now + timedelta(minutes=1)) == 1
    session.refresh(message)
    assert (message.status, message.error_code) == ("undelivered", 30003)
    assert message.status_updated_at == now  # when Twilio said so, not when the tick ran
    flag = session.scalars(select(Flag)).one()
    assert (flag.reason, flag.participant_id) == ("delivery_failed", person.id)
    assert session.scalars(select(EarlyStatusCallback)).all() == []


def test_early_callbacks_are_applied_in_the_order_they_came(
    session: Session, now: datetime
) -> None:
    message = _sent(
        session, now, make_participant(session, now), status="sending", provider_sid=None
    )
    for status in ("sent", "delivered", "queued"):
        apply_status(
            session, provider_sid="SMorder", twilio_status=status, error_code=None, now=now
        )
    message.provider_sid = "SMorder"
    session.flush()
    assert apply_early_callbacks(session, now) == 3
    session.refresh(message)
    assert message.status == "delivered"


def test_a_callback_for_a_sid_that_never_turns_up_is_dropped_after_a_day(
    session: Session, now: datetime
) -> None:
    apply_status(
        session, provider_sid="SMother", twilio_status="delivered", error_code=None, now=now
    )
    assert apply_early_callbacks(session, now + EARLY_CALLBACK_TTL) == 0
    assert len(session.scalars(select(EarlyStatusCallback)).all()) == 1  # still waiting
    assert apply_early_callbacks(session, now + EARLY_CALLBACK_TTL + timedelta(seconds=1)) == 0
    assert session.scalars(select(EarlyStatusCallback)).all() == []
