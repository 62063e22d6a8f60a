"""POST /twilio/inbound and /twilio/status through the Flask app, signed as Twilio signs them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from bot import create_app
from bot.config import Config
from bot.models import (
    ConsentEvent,
    Flag,
    FlagEvent,
    InboundMessage,
    OutboundMessage,
    Participant,
    PlannedContact,
)
from bot.services.flags import raise_flag
from bot.transport.simulated import SimulatedTransport
from bot.web.webhook import check_signature
from tests.factories import make_appointment, make_participant, make_user

TOKEN = "test-auth-token-0123456789abcdef"
BASE = "https://checkin.example.org"
# What the app sees behind a TLS-terminating proxy.
PROXY_BASE = "http://127.0.0.1:8000"

FormData = Iterable[tuple[str, str]] | dict[str, str]


@pytest.fixture
def signed_config(config: Config) -> Config:
    return config.with_overrides(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TOKEN,
        twilio_from_number="+15550100999",
    )


@pytest.fixture
def app(signed_config: Config, transport: SimulatedTransport) -> Flask:
    return create_app(signed_config, transport)


def _pairs(data: FormData) -> list[tuple[str, str]]:
    return list(data.items()) if isinstance(data, dict) else list(data)


def sign(url: str, data: FormData, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, MultiDict(_pairs(data)))


def post(
    client: FlaskClient,
    path: str,
    data: FormData,
    *,
    query: str = "",
    signature: str | None = None,
    signed_base: str = BASE,
) -> Any:
    full = f"{path}?{query}" if query else path
    if signature is None:
        signature = sign(signed_base + full, data)
    return client.post(
        full,
        data=MultiDict(_pairs(data)),
        headers={"X-Twilio-Signature": signature},
        base_url=PROXY_BASE,
    )


_sid_counter = iter(range(1, 10**6))


def inbound_form(sender: str, body: str, sid: str | None = None, **extra: str) -> dict[str, str]:
    form = {
        "MessageSid": sid or f"SM{next(_sid_counter):032d}",
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15550100999",
        "Body": body,
        "NumMedia": "0",
    }
    form.update(extra)
    return form


def message_of(response: Any) -> str | None:
    """The reply text in a TwiML answer, None for an empty <Response/>."""
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    root = ElementTree.fromstring(response.data)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    return messages[0].text if messages else None


def count(session: Session, model: Any) -> int:
    session.expire_all()
    value = session.scalar(select(func.count()).select_from(model)) or 0
    done_reading(session)
    return value


def done_reading(session: Session) -> None:
    """End the test's read transaction: on SQLite every transaction takes the write lock
    (BEGIN IMMEDIATE), and the app under test needs it."""
    session.rollback()


@pytest.fixture
def person(session: Session, now: datetime) -> Participant:
    coach = make_user(session, now, name="Dana Coach", phone="+12025550111")
    participant = make_participant(session, now, first_name="Sam", coach_id=coach.id)
    session.commit()
    return participant


# --- signatures -----------------------------------------------------------------------------


def test_twilios_published_known_answer_signature_is_accepted(signed_config: Config) -> None:
    # Twilio's own example (twilio-python tests/unit/test_request_validator.py, the "Validating
    # requests" docs): token 12345, this URL and form, signature RSOYDt4T1cUTdK1PDd93/VVr8B8=.
    config = signed_config.with_overrides(
        twilio_auth_token="12345", public_base_url="https://mycompany.com"
    )
    app = create_app(config, SimulatedTransport())
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    path = "/myapp.php?foo=1&bar=2"
    with app.test_request_context(
        path,
        method="POST",
        data=params,
        base_url=PROXY_BASE,
        headers={"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
    ):
        assert check_signature() is None
    with app.test_request_context(
        path,
        method="POST",
        data=params,
        headers={"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B9="},
    ):
        denied = check_signature()
        assert denied is not None and denied.status_code == 403


def test_twilios_published_repeated_key_example_is_accepted(signed_config: Config) -> None:
    # The SDK's multi-value example: Digits twice, signature IK+Dwps556ElfBT0I3Rgjkr1wJU=.
    config = signed_config.with_overrides(
        twilio_auth_token="12345", public_base_url="https://mycompany.com"
    )
    app = create_app(config, SimulatedTransport())
    data = MultiDict(
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    )
    with app.test_request_context(
        "/myapp.php?foo=1&bar=2",
        method="POST",
        data=data,
        headers={"X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
    ):
        assert check_signature() is None
    only_first = MultiDict([("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678")])
    with app.test_request_context(
        "/myapp.php?foo=1&bar=2",
        method="POST",
        data=only_first,
        headers={"X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
    ):
        assert check_signature() is not None


def test_behind_a_proxy_the_public_https_url_is_what_is_checked(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    form = inbound_form(person.phone, "hello")
    # Signed over https://checkin.example.org/twilio/inbound; the app is reached over http.
    assert message_of(post(client, "/twilio/inbound", form)) is None
    assert count(session, InboundMessage) == 1
    # A signature over the URL the app sees (the proxy's) is not Twilio's.
    response = post(
        client, "/twilio/inbound", inbound_form(person.phone, "hi"), signed_base=PROXY_BASE
    )
    assert response.status_code == 403
    assert count(session, InboundMessage) == 1


def test_repeated_form_keys_are_all_signed(client: FlaskClient, session: Session) -> None:
    form = [
        *inbound_form("+13125550999", "two pictures", NumMedia="2").items(),
        ("MediaUrl0", "https://api.twilio.com/media/ME1"),
        ("MediaUrl1", "https://api.twilio.com/media/ME2"),
        ("Extra", "a"),
        ("Extra", "b"),
    ]
    assert post(client, "/twilio/inbound", form).status_code == 200
    stored = session.scalars(select(InboundMessage)).one()
    assert stored.raw_form["Extra"] == ["a", "b"]
    # Dropping one of the repeated values breaks the signature.
    signature = sign(BASE + "/twilio/inbound", form)
    tampered = [pair for pair in form if pair != ("Extra", "b")]
    tampered = [(k, v) if k != "MessageSid" else (k, "SM" + "9" * 32) for k, v in tampered]
    response = post(client, "/twilio/inbound", tampered, signature=signature)
    assert response.status_code == 403


def test_a_query_string_is_part_of_the_signed_url(client: FlaskClient, session: Session) -> None:
    form = inbound_form("+13125550998", "hi")
    assert post(client, "/twilio/inbound", form, query="source=sms&x=1").status_code == 200
    other = inbound_form("+13125550998", "hi again")
    signature_without_query = sign(BASE + "/twilio/inbound", other)
    response = post(
        client, "/twilio/inbound", other, query="source=sms&x=1", signature=signature_without_query
    )
    assert response.status_code == 403
    assert count(session, InboundMessage) == 1


@pytest.mark.parametrize(
    "signature",
    ["", "not-a-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8="],
    ids=["missing", "garbage", "other"],
)
def test_forged_requests_get_403_store_nothing_and_log_one_masked_line(
    client: FlaskClient, session: Session, caplog: pytest.LogCaptureFixture, signature: str
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    form = inbound_form("+13125550123", "my secret words")
    response = client.post(
        "/twilio/inbound",
        data=form,
        headers={"X-Twilio-Signature": signature} if signature else {},
        base_url=PROXY_BASE,
    )
    assert response.status_code == 403
    assert count(session, InboundMessage) == 0
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot")]
    assert len(lines) == 1
    assert "webhook.forbidden" in lines[0]
    assert "+1******0123" in lines[0]
    assert "3125550123" not in lines[0]
    assert "secret" not in lines[0]


def test_a_body_changed_after_signing_is_refused(client: FlaskClient, session: Session) -> None:
    form = inbound_form("+13125550124", "see you at 5")
    signature = sign(BASE + "/twilio/inbound", form)
    form["Body"] = "STOP"
    assert post(client, "/twilio/inbound", form, signature=signature).status_code == 403
    assert count(session, InboundMessage) == 0


def test_without_an_auth_token_every_webhook_is_refused(config: Config, session: Session) -> None:
    client = create_app(config, SimulatedTransport()).test_client()
    form = inbound_form("+13125550125", "hello")
    assert post(client, "/twilio/inbound", form).status_code == 403
    assert (
        post(client, "/twilio/status", {"MessageSid": "SM1", "MessageStatus": "sent"}).status_code
        == 403
    )
    assert count(session, InboundMessage) == 0


def test_the_status_callback_is_signed_too(client: FlaskClient, session: Session) -> None:
    form = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    assert post(client, "/twilio/status", form, signature="bad").status_code == 403
    assert post(client, "/twilio/status", form).status_code == 200


# --- keywords through the webhook -----------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Stop. ", "UNSUBSCRIBE", "cancel", "QUIT!", "optout"]
)
def test_carrier_opt_out_words_get_an_empty_answer_and_opt_out(
    client: FlaskClient, session: Session, person: Participant, word: str
) -> None:
    assert message_of(post(client, "/twilio/inbound", inbound_form(person.phone, word))) is None
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "opted_out"
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "opt_out")).one()
    assert event.wording == word
    assert event.method == "sms_keyword"


def test_plain_language_opt_out_gets_our_confirmation(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    reply = message_of(
        post(client, "/twilio/inbound", inbound_form(person.phone, "stop texting me pls"))
    )
    assert reply is not None and "START" in reply and "Homecoming Peers" in reply
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "opted_out"
    flag = session.scalars(select(Flag).where(Flag.reason == "opted_out")).one()
    assert flag.severity == "info"
    # Recorded so the conversation view shows it; never sent again by the worker.
    row = session.scalars(select(OutboundMessage)).one()
    assert row.status == "sent" and row.purpose == "reply" and row.body == reply


def test_spanish_opt_out_gets_a_spanish_confirmation(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    maria = make_participant(session, now, first_name="María", language="es")
    session.commit()
    reply = message_of(post(client, "/twilio/inbound", inbound_form(maria.phone, "ALTO")))
    assert reply is not None and "ya no te escribiremos" in reply
    session.expire_all()
    assert session.get_one(Participant, maria.id).status == "opted_out"


def test_stop_on_whatsapp_is_confirmed_by_us(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    # Twilio's automatic opt-out handling is for SMS; on WhatsApp nobody else would answer.
    person = make_participant(session, now, channel="whatsapp")
    session.commit()
    response = post(client, "/twilio/inbound", inbound_form(f"whatsapp:{person.phone}", "STOP"))
    reply = message_of(response)
    assert reply is not None and "START" in reply
    row = session.scalars(select(OutboundMessage)).one()
    assert row.channel == "whatsapp" and row.to_address == f"whatsapp:{person.phone}"


def test_start_after_stop_reactivates_with_a_new_plan_version(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    version = person.plan_version
    post(client, "/twilio/inbound", inbound_form(person.phone, "STOP"))
    assert message_of(post(client, "/twilio/inbound", inbound_form(person.phone, "START"))) is None
    session.expire_all()
    again = session.get_one(Participant, person.id)
    assert again.status == "active" and again.plan_version == version + 1
    kinds = session.scalars(select(ConsentEvent.kind).order_by(ConsentEvent.id)).all()
    assert kinds == ["opt_out", "opt_in"]
    flag = session.scalars(select(Flag).where(Flag.reason == "opted_out")).one()
    assert flag.state == "resolved"


def test_plain_language_start_gets_our_welcome_back(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    post(client, "/twilio/inbound", inbound_form(person.phone, "no more texts"))
    reply = message_of(
        post(client, "/twilio/inbound", inbound_form(person.phone, "start texting me again"))
    )
    assert reply is not None and reply.startswith("Welcome back")


@pytest.mark.parametrize("word", ["HELP", "help?", "Info"])
def test_help_names_the_program_its_phone_988_and_how_to_stop(
    client: FlaskClient, person: Participant, word: str
) -> None:
    reply = message_of(post(client, "/twilio/inbound", inbound_form(person.phone, word)))
    assert reply is not None
    for needed in ("Homecoming Peers", "+1 555 010 0100", "988", "STOP"):
        assert needed in reply


def test_ayuda_gets_the_spanish_help(client: FlaskClient, session: Session, now: datetime) -> None:
    maria = make_participant(session, now, language="es")
    session.commit()
    reply = message_of(post(client, "/twilio/inbound", inbound_form(maria.phone, "AYUDA")))
    assert reply is not None and "AYUDA al 988" in reply and "+1 555 010 0100" in reply


def _remind(session: Session, participant: Participant, starts_at: datetime, now: datetime) -> int:
    appointment = make_appointment(session, participant, starts_at, now)
    contact = PlannedContact(
        participant_id=participant.id,
        kind="reminder",
        rule="reminder.1d",
        occurrence=f"appt-{appointment.id}",
        version="1",
        appointment_id=appointment.id,
        template_key="reminder.supervision.1d",
        send_after=now - timedelta(hours=1),
        not_after=now,
        state="sent",
        created_at=now,
    )
    session.add(contact)
    session.flush()
    session.add(
        OutboundMessage(
            idempotency_key=f"contact:{contact.id}",
            participant_id=participant.id,
            planned_contact_id=contact.id,
            purpose="reminder",
            channel="sms",
            to_address=participant.phone,
            body="reminder",
            status="delivered",
            send_after=now,
            created_at=now,
        )
    )
    session.commit()
    return appointment.id


@pytest.mark.parametrize("word", ["YES", "c", "Sí", "yes I'll be there 👍"])
def test_yes_confirms_the_reminded_appointment(
    client: FlaskClient, session: Session, person: Participant, word: str
) -> None:
    from bot.models import Appointment

    starts = datetime.now(UTC) + timedelta(days=1)
    appointment_id = _remind(session, person, starts, datetime.now(UTC) - timedelta(days=1))
    reply = message_of(post(client, "/twilio/inbound", inbound_form(person.phone, word)))
    assert reply is not None and "Thanks for confirming" in reply
    session.expire_all()
    appointment = session.get_one(Appointment, appointment_id)
    assert appointment.status == "confirmed" and appointment.responded_at is not None


def test_no_declines_and_flags_for_a_coach(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    from bot.models import Appointment

    starts = datetime.now(UTC) + timedelta(days=1)
    appointment_id = _remind(session, person, starts, datetime.now(UTC) - timedelta(days=1))
    reply = message_of(post(client, "/twilio/inbound", inbound_form(person.phone, "can't make it")))
    assert reply is not None and "find a new time" in reply and reply.endswith("- Dana")
    session.expire_all()
    assert session.get_one(Appointment, appointment_id).status == "declined"
    flag = session.scalars(select(Flag).where(Flag.reason == "appointment_declined")).one()
    assert flag.severity == "normal" and flag.participant_id == person.id


def test_yes_without_a_reminded_appointment_is_just_a_reply(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    assert message_of(post(client, "/twilio/inbound", inbound_form(person.phone, "yes"))) is None
    stored = session.scalars(select(InboundMessage)).one()
    assert stored.intent == "yes" and stored.processing_state == "processed"


def test_an_ordinary_reply_gets_no_canned_answer(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    response = post(client, "/twilio/inbound", inbound_form(person.phone, "doing ok, got the job"))
    assert message_of(response) is None
    stored = session.scalars(select(InboundMessage)).one()
    assert stored.participant_id == person.id and stored.intent == "none"


# --- matching and unknown senders -----------------------------------------------------------


def test_whatsapp_and_sms_from_one_number_are_the_same_person(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    post(client, "/twilio/inbound", inbound_form(person.phone, "hi"))
    post(client, "/twilio/inbound", inbound_form(f"whatsapp:{person.phone}", "hi again"))
    rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
    assert [r.participant_id for r in rows] == [person.id, person.id]
    assert [r.channel for r in rows] == ["sms", "whatsapp"]


def test_an_unknown_number_gets_a_polite_reply_and_a_flag(
    client: FlaskClient, session: Session
) -> None:
    reply = message_of(post(client, "/twilio/inbound", inbound_form("+13125550777", "who is this")))
    assert reply is not None and "+1 555 010 0100" in reply
    flag = session.scalars(select(Flag)).one()
    assert (flag.reason, flag.severity, flag.sender_address) == (
        "unknown_sender",
        "normal",
        "+13125550777",
    )
    done_reading(session)
    # A second text the same day: one flag, no second canned answer.
    assert (
        message_of(post(client, "/twilio/inbound", inbound_form("+13125550777", "hello?"))) is None
    )
    session.expire_all()
    assert count(session, Flag) == 1
    assert session.scalars(select(Flag)).one().occurrences == 2


def test_help_from_an_unknown_number_gets_the_help_text(
    client: FlaskClient, session: Session
) -> None:
    reply = message_of(post(client, "/twilio/inbound", inbound_form("+13125550778", "HELP")))
    assert reply is not None and "Homecoming Peers" in reply and "988" in reply
    assert session.scalars(select(Flag.reason)).one() == "unknown_sender"


# --- crisis -----------------------------------------------------------------------------------


def test_crisis_gets_988_and_911_at_once_an_urgent_flag_and_a_page(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    reply = message_of(
        post(client, "/twilio/inbound", inbound_form(person.phone, "i want to kill myself"))
    )
    assert reply is not None and "988" in reply and "911" in reply
    flag = session.scalars(select(Flag).where(Flag.reason == "crisis")).one()
    assert flag.severity == "urgent" and flag.ladder_step == 1 and flag.next_page_at is not None
    page = session.scalars(select(OutboundMessage).where(OutboundMessage.purpose == "page")).one()
    assert page.to_address == "+12025550111" and page.ignore_quiet_hours
    assert (
        page.body
        == f"checkin: urgent flag for {person.label}. Open the dashboard: {BASE}/flags/{flag.id}"
    )
    crisis_reply = session.scalars(
        select(OutboundMessage).where(OutboundMessage.purpose == "crisis_reply")
    ).one()
    assert crisis_reply.status == "sent" and crisis_reply.body == reply


def test_spanish_crisis_reply_says_text_ayuda_to_988(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    maria = make_participant(session, now, language="es")
    session.commit()
    reply = message_of(
        post(client, "/twilio/inbound", inbound_form(maria.phone, "ya no quiero vivir"))
    )
    assert reply is not None and "AYUDA al 988" in reply and "911" in reply


# The reply that fits the kind of crisis, in the participant's language: overdose names 911
# first and naloxone; someone else in danger hears that 988 helps them too; violence gets 911
# and 988; anything else the general reply. Each with the urgent flag and the page.
KIND_CASES = [
    ("en", "i want to kill myself", "crisis", "You don't have to go through this alone"),
    ("es", "ya no quiero vivir", "crisis", "No tienes que pasar por esto a solas"),
    ("en", "my brother took too many pills and wont wake up", "crisis.overdose", "naloxone"),
    ("es", "mi hermano se tomo todas las pastillas y no despierta", "crisis.overdose", "naloxona"),
    (
        "en",
        "my best friend keeps saying she wants to die and wont answer her phone",
        "crisis.other_in_danger",
        "988 helps people who are worried about someone else too",
    ),
    (
        "es",
        "mi hermana dice que se quiere morir y se encerro en el cuarto",
        "crisis.other_in_danger",
        "El 988 también ayuda a quienes se preocupan por alguien más",
    ),
    ("en", "my ex said hes gonna kill me, hes outside", "crisis.violence", "If you or anyone"),
    ("es", "mi ex me va a matar, esta afuera", "crisis.violence", "Si tú o alguien más"),
]


@pytest.mark.parametrize(("language", "body", "key", "words"), KIND_CASES)
def test_each_kind_of_crisis_gets_its_reply_an_urgent_flag_and_a_page(
    client: FlaskClient,
    session: Session,
    now: datetime,
    language: str,
    body: str,
    key: str,
    words: str,
) -> None:
    coach = make_user(session, now, name="Dana Coach", phone="+12025550111")
    participant = make_participant(session, now, language=language, coach_id=coach.id)
    session.commit()
    reply = message_of(post(client, "/twilio/inbound", inbound_form(participant.phone, body)))
    assert reply is not None and words in reply
    assert "911" in reply and "988" in reply
    if key == "crisis.overdose":
        assert reply.index("911") < reply.index("988")
    flag = session.scalars(select(Flag).where(Flag.reason == "crisis")).one()
    assert flag.severity == "urgent" and flag.ladder_step == 1
    page = session.scalars(select(OutboundMessage).where(OutboundMessage.purpose == "page")).one()
    assert page.to_address == "+12025550111" and page.ignore_quiet_hours
    sent = session.scalars(
        select(OutboundMessage).where(OutboundMessage.purpose == "crisis_reply")
    ).one()
    assert sent.body == reply and sent.to_address == participant.phone


def test_crisis_is_answered_in_quiet_hours_and_when_paused(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    paused = make_participant(session, now, status="paused")
    session.commit()
    # 03:00 in New York.
    with time_machine.travel(datetime(2026, 3, 3, 8, 0, tzinfo=UTC), tick=False):
        reply = message_of(
            post(client, "/twilio/inbound", inbound_form(paused.phone, "I took too many pills"))
        )
    assert reply is not None and "988" in reply


def test_crisis_from_an_opted_out_number_pages_but_sends_no_text(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    post(client, "/twilio/inbound", inbound_form(person.phone, "STOP"))
    response = post(client, "/twilio/inbound", inbound_form(person.phone, "i want to die"))
    assert message_of(response) is None
    flag = session.scalars(select(Flag).where(Flag.reason == "crisis")).one()
    assert flag.severity == "urgent"
    assert (
        session.scalars(
            select(OutboundMessage).where(OutboundMessage.to_address == person.phone)
        ).all()
        == []
    )
    assert count(session, OutboundMessage) == 1  # the page to the coach


# --- exactly once, failures, odd input ------------------------------------------------------


def test_a_retried_message_sid_changes_nothing_and_answers_the_same(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    form = inbound_form(person.phone, "i want to end it all")
    first = message_of(post(client, "/twilio/inbound", form))
    events = count(session, FlagEvent)
    second = message_of(post(client, "/twilio/inbound", form))
    assert first is not None and second == first
    assert count(session, InboundMessage) == 1
    assert count(session, FlagEvent) == events
    assert count(session, OutboundMessage) == 2  # one crisis reply, one page


def test_a_processing_failure_keeps_the_message_and_still_answers_twiml(
    client: FlaskClient,
    session: Session,
    person: Participant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("boom: i feel hopeless")

    # An ordinary reply: the step every reply takes (telling the escalation rules) fails.
    monkeypatch.setattr("bot.services.expectations.on_participant_reply", broken)
    caplog.set_level(logging.INFO, logger="bot")
    response = post(client, "/twilio/inbound", inbound_form(person.phone, "i feel hopeless"))
    assert message_of(response) is None
    stored = session.scalars(select(InboundMessage)).one()
    assert stored.processing_state == "failed" and stored.processing_error == "RuntimeError"
    assert stored.body == "i feel hopeless" and stored.participant_id == person.id
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "inbound.processing_failed" in errors[0]
    assert "hopeless" not in errors[0] and person.phone not in errors[0]


@pytest.mark.parametrize("step", ["detect_crisis", "classify_keyword"])
def test_a_failure_to_read_the_text_still_stores_it_marked_failed_and_answers_twiml(
    client: FlaskClient,
    session: Session,
    person: Participant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    step: str,
) -> None:
    # Reading the text (crisis words, keywords) is processing too: if it fails, the text must
    # already be stored for good, kept as `failed` for a coach and for the tick's retry, and
    # Twilio still gets valid TwiML. A crisis text must never be lost to a bug in the reading.
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("boom: i want to end it all")

    monkeypatch.setattr(f"bot.services.inbound.{step}", broken)
    caplog.set_level(logging.INFO, logger="bot")
    response = post(client, "/twilio/inbound", inbound_form(person.phone, "i want to end it all"))
    assert message_of(response) is None
    stored = session.scalars(select(InboundMessage)).one()
    assert stored.processing_state == "failed" and stored.processing_error == "RuntimeError"
    assert stored.body == "i want to end it all" and stored.participant_id == person.id
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "inbound.processing_failed" in errors[0]
    assert "end it all" not in errors[0] and person.phone not in errors[0]


def test_mms_media_urls_and_count_are_stored(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    form = inbound_form(
        person.phone,
        "",
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME0",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1",
        MediaContentType1="image/png",
    )
    assert message_of(post(client, "/twilio/inbound", form)) is None
    stored = session.scalars(select(InboundMessage)).one()
    assert stored.num_media == 2 and stored.body == ""
    assert stored.raw_form["MediaUrl1"] == [form["MediaUrl1"]]


def test_a_1600_character_body_is_stored_whole(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    body = ("long day but ok. " * 100)[:1600]
    assert post(client, "/twilio/inbound", inbound_form(person.phone, body)).status_code == 200
    assert session.scalars(select(InboundMessage.body)).one() == body


def test_nul_and_invalid_utf8_never_cause_a_500(
    client: FlaskClient, session: Session, person: Participant
) -> None:
    raw = (
        f"MessageSid=SM{'7' * 32}&From=%2B{person.phone[1:]}&To=%2B15550100999"
        "&Body=caf%FF%FE%00ok&NumMedia=0"
    ).encode()
    # Sign what the app will parse, as Twilio signs what it sends.
    parsed = Request(
        EnvironBuilder(
            method="POST", data=raw, content_type="application/x-www-form-urlencoded"
        ).get_environ()
    ).form
    signature = RequestValidator(TOKEN).compute_signature(BASE + "/twilio/inbound", parsed)
    response = client.post(
        "/twilio/inbound",
        data=raw,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 200
    stored = session.scalars(select(InboundMessage)).one()
    assert "\x00" not in stored.body


@pytest.mark.parametrize("missing", ["From", "MessageSid"])
def test_a_signed_form_without_from_or_sid_is_a_400_and_not_stored(
    client: FlaskClient, session: Session, missing: str
) -> None:
    form = inbound_form("+13125550001", "hello")
    del form[missing]
    assert post(client, "/twilio/inbound", form).status_code == 400
    assert count(session, InboundMessage) == 0


def test_an_absurd_from_is_a_400(client: FlaskClient, session: Session) -> None:
    form = inbound_form("+1" + "3" * 60, "hello")
    assert post(client, "/twilio/inbound", form).status_code == 400
    assert count(session, InboundMessage) == 0


# --- status callbacks through the webhook ---------------------------------------------------


def test_status_callbacks_move_forward_only_and_unknown_sids_get_200(
    client: FlaskClient, session: Session, person: Participant, now: datetime
) -> None:
    sid = "SM" + "4" * 32
    session.add(
        OutboundMessage(
            idempotency_key="k1",
            participant_id=person.id,
            purpose="checkin",
            channel="sms",
            to_address=person.phone,
            body="hi",
            status="queued",
            provider_sid=sid,
            send_after=now,
            created_at=now,
        )
    )
    session.commit()
    for status in ("delivered", "sent", "queued"):
        assert (
            post(client, "/twilio/status", {"MessageSid": sid, "MessageStatus": status}).status_code
            == 200
        )
    session.expire_all()
    assert session.scalars(select(OutboundMessage.status)).one() == "delivered"
    done_reading(session)
    unknown = {"MessageSid": "SM" + "5" * 32, "MessageStatus": "delivered"}
    assert post(client, "/twilio/status", unknown).status_code == 200


def test_status_21610_opts_the_participant_out(
    client: FlaskClient, session: Session, person: Participant, now: datetime
) -> None:
    sid = "SM" + "6" * 32
    session.add(
        OutboundMessage(
            idempotency_key="k2",
            participant_id=person.id,
            purpose="checkin",
            channel="sms",
            to_address=person.phone,
            body="hi",
            status="queued",
            provider_sid=sid,
            send_after=now,
            created_at=now,
        )
    )
    session.commit()
    form = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert post(client, "/twilio/status", form).status_code == 200
    session.expire_all()
    assert session.get_one(Participant, person.id).status == "opted_out"


# --- real concurrency (PostgreSQL) ----------------------------------------------------------


def _post_at_once(app: Flask, form: dict[str, str], *, times: int) -> list[Any]:
    """POST the same signed form from `times` threads released together; their responses."""
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(times)

    def worker() -> None:
        try:
            client = app.test_client()
            barrier.wait()
            results.append(post(client, "/twilio/inbound", form))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    return results


@pytest.mark.postgres_only
def test_two_identical_requests_at_once_store_one_row_and_act_once(
    app: Flask, sessions: sessionmaker[Session], session: Session, person: Participant
) -> None:
    form = inbound_form(person.phone, "I want to kill myself")
    results = _post_at_once(app, form, times=4)
    assert len(results) == 4
    for response in results:
        message_of(response)  # each is valid TwiML
    assert count(session, InboundMessage) == 1
    assert (
        session.scalar(select(func.count()).where(OutboundMessage.purpose == "crisis_reply")) == 1
    )
    assert session.scalar(select(func.count()).where(OutboundMessage.purpose == "page")) == 1
    flag = session.scalars(select(Flag).where(Flag.reason == "crisis")).one()
    assert flag.occurrences == 1
    assert session.scalar(select(func.count()).where(FlagEvent.kind == "opened")) == 1


@pytest.mark.postgres_only
def test_four_identical_ordinary_replies_at_once_store_one_row_and_count_one_reply(
    app: Flask, session: Session, person: Participant, now: datetime
) -> None:
    flag = raise_flag(
        session, reason="no_reply", severity="normal", now=now, participant_id=person.id
    ).flag
    session.commit()
    form = inbound_form(person.phone, "doing ok today")
    results = _post_at_once(app, form, times=4)
    assert [message_of(response) for response in results] == [None] * 4
    session.expire_all()
    stored = session.scalars(select(InboundMessage)).one()
    assert (stored.processing_state, stored.intent) == ("processed", "none")
    assert session.get_one(Flag, flag.id).state == "resolved"
    auto = select(func.count()).where(FlagEvent.kind == "auto_resolved")
    assert session.scalar(auto) == 1


# --- self-service keywords --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "body", "expected"),
    [
        ("en", "CALL ME", "Thanks, Sam. Dana will call you."),
        ("es", "llámame por favor", "Gracias, Sam. Dana te va a llamar."),
    ],
)
def test_call_me_is_answered_in_the_persons_language(
    client: FlaskClient, session: Session, now: datetime, language: str, body: str, expected: str
) -> None:
    coach = make_user(session, now, name="Dana Coach")
    sam = make_participant(session, now, language=language, coach_id=coach.id)
    session.commit()
    assert message_of(post(client, "/twilio/inbound", inbound_form(sam.phone, body))) == expected


@pytest.mark.parametrize(
    ("language", "body", "expected"),
    [
        ("en", "NEXT", "Sam, your next appointment is "),
        ("es", "PRÓXIMA", "Sam, tu siguiente cita es el "),
    ],
)
def test_next_names_the_next_appointment_in_the_persons_language(
    client: FlaskClient, session: Session, now: datetime, language: str, body: str, expected: str
) -> None:
    sam = make_participant(session, now, language=language)
    make_appointment(session, sam, datetime.now(UTC) + timedelta(days=2), now, location="Room 4")
    session.commit()
    reply = message_of(post(client, "/twilio/inbound", inbound_form(sam.phone, body)))
    assert reply is not None and reply.startswith(expected) and reply.endswith("Room 4.")


@pytest.mark.parametrize(
    ("language", "body", "expected"),
    [
        ("en", "next appt?", "I don't have an upcoming appointment"),
        ("es", "proxima cita", "no tengo"),
    ],
)
def test_next_without_an_appointment_says_so(
    client: FlaskClient, session: Session, now: datetime, language: str, body: str, expected: str
) -> None:
    sam = make_participant(session, now, language=language)
    session.commit()
    reply = message_of(post(client, "/twilio/inbound", inbound_form(sam.phone, body)))
    assert reply is not None and expected in reply


@pytest.mark.parametrize(
    ("language", "pause", "resume", "paused_words", "resumed_words"),
    [
        ("en", "PAUSE", "RESUME", "Check-ins are paused", "Check-ins are on again"),
        ("es", "PAUSA", "SEGUIR", "Pausamos el seguimiento", "Volvemos con los mensajes"),
    ],
)
def test_pause_and_resume_are_confirmed_in_the_persons_language(
    client: FlaskClient,
    session: Session,
    now: datetime,
    language: str,
    pause: str,
    resume: str,
    paused_words: str,
    resumed_words: str,
) -> None:
    sam = make_participant(session, now, language=language)
    session.commit()
    sam_id, phone = sam.id, sam.phone
    done_reading(session)
    paused = message_of(post(client, "/twilio/inbound", inbound_form(phone, pause)))
    assert paused is not None and paused_words in paused
    session.expire_all()
    until = session.get_one(Participant, sam_id).checkins_paused_until
    done_reading(session)
    assert until is not None and until - datetime.now(UTC) > timedelta(days=6, hours=23)
    resumed = message_of(post(client, "/twilio/inbound", inbound_form(phone, resume)))
    assert resumed is not None and resumed_words in resumed
    session.expire_all()
    assert session.get_one(Participant, sam_id).checkins_paused_until is None


def test_help_lists_the_self_service_keywords(client: FlaskClient, person: Participant) -> None:
    reply = message_of(post(client, "/twilio/inbound", inbound_form(person.phone, "HELP")))
    assert reply is not None
    assert all(word in reply for word in ("CALL ME", "NEXT", "PAUSE", "RESUME", "STOP"))


@pytest.mark.parametrize(
    "body", ["no puedo ir", "No voy a poder llegar, lo siento", "no alcanzo a llegar"]
)
def test_spanish_cant_make_it_declines_the_reminded_appointment(
    client: FlaskClient, session: Session, now: datetime, body: str
) -> None:
    from bot.models import Appointment

    maria = make_participant(session, now, language="es")
    session.commit()
    starts = datetime.now(UTC) + timedelta(days=1)
    appointment_id = _remind(session, maria, starts, datetime.now(UTC) - timedelta(days=1))
    reply = message_of(post(client, "/twilio/inbound", inbound_form(maria.phone, body)))
    assert reply is not None and reply.startswith("Gracias por avisar")
    session.expire_all()
    assert session.get_one(Appointment, appointment_id).status == "declined"
    flag = session.scalars(select(Flag).where(Flag.reason == "appointment_declined")).one()
    assert flag.participant_id == maria.id
