"""WhatsApp's 24-hour window: free text inside it, an approved template outside it, and
`needs_template` with one program-level flag when none is mapped (or WhatsApp says 63016)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from twilio.rest import Client

from bot.config import Config
from bot.models import Flag, InboundMessage, OutboundMessage, Participant, PlannedContact
from bot.services import sendability, whatsapp_window
from bot.services.delivery import apply_status
from bot.services.flags import raise_flag
from bot.transport.simulated import SimulatedTransport
from bot.transport.twilio import RebasedHttpClient, TwilioTransport
from scheduler.tick import tick
from tests.factories import make_participant
from tests.scheduler.fake_twilio import FakeTwilio
from tests.scheduler.helpers import utc

ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = utc("2026-03-03T15:05:00Z")  # 10:05 EST on day 1: the welcome and day 1 are due
SID = "HX" + "ab" * 16


def _whatsapp_participant(sessions: sessionmaker[Session], **overrides: object) -> int:
    with sessions.begin() as session:
        values: dict[str, object] = {
            "release_date": date(2026, 3, 2),
            "enrolled_at": ENROLLED,
            "channel": "whatsapp",
            "language": "es",
        }
        values.update(overrides)
        return make_participant(session, ENROLLED, **values).id


def _texted(sessions: sessionmaker[Session], pid: int, at: datetime) -> None:
    with sessions.begin() as session:
        session.add(
            InboundMessage(
                message_sid=f"SM{pid:032d}{int(at.timestamp())}"[:34],
                from_address="whatsapp:+13125550000",
                to_address="whatsapp:+15550100001",
                channel="whatsapp",
                body="hola",
                raw_form={},
                participant_id=pid,
                received_at=at,
                needs_reply=False,
            )
        )


def _map_all(sessions: sessionmaker[Session], language: str = "es") -> None:
    with sessions.begin() as session:
        for key in ("welcome", *_checkin_keys(session)):
            whatsapp_window.save_mapping(
                session,
                template_key=key,
                language=language,
                content_sid=SID,
                variables={"1": "first_name", "2": "program_name"},
                now=ENROLLED,
                user_id=None,
            )


def _checkin_keys(session: Session) -> set[str]:
    return set(
        session.scalars(select(PlannedContact.template_key).where(PlannedContact.kind == "checkin"))
    )


def _run(sessions: sessionmaker[Session], transport: object, config: Config, now: datetime) -> None:
    tick(sessions, transport, config, now, rate_limited=False)  # type: ignore[arg-type]


def _statuses(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(OutboundMessage.status).order_by(OutboundMessage.id)))


def _program_flags(sessions: sessionmaker[Session]) -> list[Flag]:
    with sessions() as session:
        return list(session.scalars(select(Flag).where(Flag.reason == "whatsapp_template_missing")))


def test_inside_the_window_whatsapp_goes_as_free_text(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _whatsapp_participant(sessions)
    _texted(sessions, pid, NOW - timedelta(hours=23))
    _run(sessions, transport, config, ENROLLED)  # plans
    _run(sessions, transport, config, NOW)
    assert len(transport.sent) == 2
    assert all(m.content_sid is None and m.body for m in transport.sent)
    assert all(m.to.startswith("whatsapp:") for m in transport.sent)
    assert _program_flags(sessions) == []


def test_outside_the_window_with_no_template_nothing_is_sent_and_one_flag_is_raised(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    first = _whatsapp_participant(sessions)
    second = _whatsapp_participant(sessions)
    _texted(sessions, first, NOW - timedelta(hours=24))  # the window has just closed
    _run(sessions, transport, config, ENROLLED)
    _run(sessions, transport, config, NOW)
    assert transport.sent == []
    assert _statuses(sessions) == ["needs_template"] * 4
    flags = _program_flags(sessions)
    assert len(flags) == 1
    assert flags[0].participant_id is None and flags[0].sender_address is None
    assert flags[0].severity == "high"
    with sessions() as session:
        reasons = set(
            session.scalars(
                select(PlannedContact.state_reason).where(
                    PlannedContact.participant_id.in_([first, second]),
                    PlannedContact.state == "skipped",
                )
            )
        )
    assert reasons == {"needs_template"}


def test_outside_the_window_a_mapped_template_goes_with_its_variables(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    _whatsapp_participant(sessions, first_name="Ana")
    _run(sessions, transport, config, ENROLLED)
    _map_all(sessions)
    _run(sessions, transport, config, NOW)
    assert len(transport.sent) == 2
    for request in transport.sent:
        assert request.content_sid == SID
        assert json.loads(request.content_variables or "") == {
            "1": "Ana",
            "2": config.program_name,
        }
    assert _program_flags(sessions) == []


def test_an_english_mapping_does_not_serve_a_spanish_speaker(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    _whatsapp_participant(sessions)
    _run(sessions, transport, config, ENROLLED)
    _map_all(sessions, language="en")
    _run(sessions, transport, config, NOW)
    assert transport.sent == []
    assert len(_program_flags(sessions)) == 1


def test_sms_participants_are_not_held_to_the_window(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    _whatsapp_participant(sessions, channel="sms")
    _run(sessions, transport, config, ENROLLED)
    _run(sessions, transport, config, NOW)
    assert len(transport.sent) == 2 and all(m.content_sid is None for m in transport.sent)


def _twilio(api_base: str) -> TwilioTransport:
    client = Client("AC" + "0" * 32, "token", http_client=RebasedHttpClient(api_base))
    return TwilioTransport(
        client, from_number="+15550100000", messaging_service_sid=None, whatsapp_from="+15550100001"
    )


def test_the_template_reaches_twilio_as_content_sid_and_variables_without_a_body(
    sessions: sessionmaker[Session], config: Config
) -> None:
    _whatsapp_participant(sessions, first_name="Ana")
    with FakeTwilio() as twilio:
        transport = _twilio(twilio.url)
        _run(sessions, transport, config, ENROLLED)
        _map_all(sessions)
        _run(sessions, transport, config, NOW)
    assert len(twilio.received) == 2
    for form in twilio.received:
        assert form["ContentSid"] == SID
        assert json.loads(form["ContentVariables"])["1"] == "Ana"
        assert "Body" not in form
        assert form["From"] == "whatsapp:+15550100001"
        assert form["To"].startswith("whatsapp:+1")


def test_63016_at_the_send_is_needs_template_flagged_once_and_never_retried(
    sessions: sessionmaker[Session], config: Config
) -> None:
    pid = _whatsapp_participant(sessions)
    _texted(sessions, pid, NOW - timedelta(hours=1))  # inside the window as far as we know
    with FakeTwilio() as twilio:
        transport = _twilio(twilio.url)
        _run(sessions, transport, config, ENROLLED)
        with sessions() as session:
            address = session.get_one(Participant, pid).address
        twilio.refuse[address] = whatsapp_window.OUTSIDE_WINDOW_CODE
        _run(sessions, transport, config, NOW)
        _run(sessions, transport, config, NOW + timedelta(minutes=40))
    assert len(twilio.received) == 2  # each text tried once, never again as free text
    assert _statuses(sessions) == ["needs_template", "needs_template"]
    flags = _program_flags(sessions)
    assert len(flags) == 1 and flags[0].occurrences == 2
    with sessions() as session:
        assert session.scalars(select(Flag).where(Flag.reason == "delivery_failed")).all() == []


def test_63016_in_a_status_callback_is_needs_template_and_raises_the_program_flag(
    sessions: sessionmaker[Session], transport: SimulatedTransport, config: Config
) -> None:
    pid = _whatsapp_participant(sessions)
    _texted(sessions, pid, NOW - timedelta(hours=1))
    _run(sessions, transport, config, ENROLLED)
    _run(sessions, transport, config, NOW)
    with sessions() as session:
        sid = session.scalars(select(OutboundMessage.provider_sid)).first()
    assert sid is not None
    with sessions.begin() as session:
        outcome = apply_status(
            session,
            provider_sid=sid,
            twilio_status="failed",
            error_code="63016",
            now=NOW + timedelta(minutes=1),
        )
    assert outcome.status == "needs_template"
    assert len(_program_flags(sessions)) == 1
    with sessions.begin() as session:  # a repeated callback changes nothing
        apply_status(
            session,
            provider_sid=sid,
            twilio_status="failed",
            error_code="63016",
            now=NOW + timedelta(minutes=2),
        )
    assert _program_flags(sessions)[0].occurrences == 1


def test_the_database_keeps_one_open_program_flag_per_reason(
    session: Session, now: datetime
) -> None:
    first = raise_flag(session, reason="whatsapp_template_missing", now=now)
    again = raise_flag(session, reason="whatsapp_template_missing", now=now)
    assert first.created and not again.created and again.flag.id == first.flag.id
    session.add(
        Flag(reason="whatsapp_template_missing", severity="high", opened_at=now, updated_at=now)
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_a_participant_flag_still_needs_a_subject(session: Session, now: datetime) -> None:
    with pytest.raises(ValueError):
        raise_flag(session, reason="no_reply", now=now)
    session.add(Flag(reason="no_reply", severity="normal", opened_at=now, updated_at=now))
    with pytest.raises(IntegrityError):
        session.flush()


@pytest.mark.parametrize(
    ("whatsapp", "expected"),
    [
        (None, sendability.SEND),
        (sendability.WhatsApp(in_window=True, has_template=False), sendability.SEND),
        (sendability.WhatsApp(in_window=True, has_template=True), sendability.SEND),
        (sendability.WhatsApp(in_window=False, has_template=True), sendability.SEND_TEMPLATE),
        (sendability.WhatsApp(in_window=False, has_template=False), sendability.NEEDS_TEMPLATE),
    ],
)
def test_the_window_rule_in_the_one_decision_function(
    whatsapp: sendability.WhatsApp | None, expected: sendability.Verdict
) -> None:
    quiet = sendability.QuietHours(*(datetime(2026, 1, 1, h).time() for h in (21, 8)))
    verdict = sendability.decide(
        NOW,
        status="active",
        purpose="checkin",
        not_after=None,
        zone=ZoneInfo("America/New_York"),
        quiet=quiet,
        whatsapp=whatsapp,
    )
    assert verdict == expected


def test_quiet_hours_come_before_the_window() -> None:
    quiet = sendability.QuietHours(*(datetime(2026, 1, 1, h).time() for h in (21, 8)))
    verdict = sendability.decide(
        utc("2026-03-03T03:00:00Z"),  # 22:00 EST
        status="active",
        purpose="checkin",
        not_after=None,
        zone=ZoneInfo("America/New_York"),
        quiet=quiet,
        whatsapp=sendability.WhatsApp(in_window=False, has_template=False),
    )
    assert verdict.action == "deferred"


def test_the_window_is_24_hours_from_the_last_inbound_text() -> None:
    assert whatsapp_window.in_window(NOW - timedelta(hours=23, minutes=59), NOW)
    assert not whatsapp_window.in_window(NOW - timedelta(hours=24), NOW)
    assert not whatsapp_window.in_window(None, NOW)


def test_variables_are_parsed_against_the_keys_placeholders() -> None:
    allowed = ["first_name", "appointment_date"]
    assert whatsapp_window.parse_variables("1=first_name; 2={appointment_date}", allowed) == {
        "1": "first_name",
        "2": "appointment_date",
    }
    with pytest.raises(whatsapp_window.MappingRefused):
        whatsapp_window.parse_variables("1=diagnosis", allowed)
    with pytest.raises(whatsapp_window.MappingRefused):
        whatsapp_window.parse_variables("one=first_name", allowed)
