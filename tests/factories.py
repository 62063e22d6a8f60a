"""Small builders for test data with sensible defaults; pass only what the test is about."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.models import Appointment, OutboundMessage, Participant, PlannedContact, User
from bot.services.users import hash_password

_seq = itertools.count(1)
# One argon2 hash for every test user: hashing is deliberately slow.
TEST_PASSWORD = "correct horse battery"
_TEST_HASH = hash_password(TEST_PASSWORD)


def make_user(session: Session, now: datetime, **overrides: Any) -> User:
    n = next(_seq)
    values: dict[str, Any] = {
        "email": f"coach{n}@example.org",
        "name": f"Coach Number{n}",
        "role": "coach",
        "password_hash": _TEST_HASH,
        "phone": f"+1202555{n % 10000:04d}",
        "created_at": now,
    }
    values.update(overrides)
    user = User(**values)
    session.add(user)
    session.flush()
    return user


def make_participant(session: Session, now: datetime, **overrides: Any) -> Participant:
    n = next(_seq)
    values: dict[str, Any] = {
        "external_id": f"P-{n:05d}",
        "first_name": "Sam",
        "phone": f"+1312555{n % 10000:04d}",
        "channel": "sms",
        "timezone": "America/New_York",
        "language": "en",
        "release_date": date(2026, 3, 1),
        "status": "active",
        "consent_at": now,
        "consent_method": "import",
        "enrolled_at": now,
        "plan_version": 1,
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    participant = Participant(**values)
    session.add(participant)
    session.flush()
    return participant


def make_appointment(
    session: Session, participant: Participant, starts_at: datetime, now: datetime, **overrides: Any
) -> Appointment:
    values: dict[str, Any] = {
        "participant_id": participant.id,
        "kind": "supervision",
        "starts_at": starts_at,
        "status": "scheduled",
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    appointment = Appointment(**values)
    session.add(appointment)
    session.flush()
    return appointment


def make_sent_message(
    session: Session,
    participant: Participant,
    sent_at: datetime,
    purpose: str = "checkin",
    **overrides: Any,
) -> OutboundMessage:
    """An outbox row the sender has already handed to Twilio (status `sent`)."""
    n = next(_seq)
    values: dict[str, Any] = {
        "idempotency_key": f"test:{purpose}:{n}",
        "participant_id": participant.id,
        "purpose": purpose,
        "channel": participant.channel,
        "to_address": participant.address,
        "body": "Hi Sam, checking in. How are you doing?",
        "status": "sent",
        "send_after": sent_at,
        "created_at": sent_at,
        "sent_at": sent_at,
        "status_updated_at": sent_at,
    }
    values.update(overrides)
    message = OutboundMessage(**values)
    session.add(message)
    session.flush()
    return message


def make_sent_reminder(
    session: Session, appointment: Appointment, sent_at: datetime, offset: str = "3d"
) -> OutboundMessage:
    """A reminder for `appointment`, planned and sent (the planned contact links the two)."""
    participant = session.get(Participant, appointment.participant_id)
    assert participant is not None
    contact = PlannedContact(
        participant_id=participant.id,
        kind="reminder",
        rule=f"reminder.{offset}",
        occurrence=f"appt-{appointment.id}",
        version=f"v1.a{appointment.version}",
        appointment_id=appointment.id,
        template_key=f"reminder.{appointment.kind}.{offset}",
        send_after=sent_at,
        not_after=appointment.starts_at,
        state="sent",
        created_at=sent_at,
        decided_at=sent_at,
    )
    session.add(contact)
    session.flush()
    return make_sent_message(
        session, participant, sent_at, purpose="reminder", planned_contact_id=contact.id
    )
