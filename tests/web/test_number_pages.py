"""The conversation page under an open number_changed flag: the reply form warns and asks the
sender to say so; a coordinator confirms or changes the number there."""

from __future__ import annotations

from datetime import datetime

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import OutboundMessage, Participant, PhoneChange
from bot.services import numbers
from bot.services.flags import raise_flag
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import csrf_from, login


def _setup(client: FlaskClient, session: Session, now: datetime) -> Participant:
    make_user(session, now, email="cora@example.org", role="coordinator")
    person = make_participant(session, now, phone="+13125550150")
    raise_flag(session, reason="number_changed", now=now, participant_id=person.id)
    session.commit()
    login(client, "cora@example.org")
    return person


def test_a_reply_to_a_number_in_doubt_needs_the_sender_to_say_so(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    person = _setup(client, session, now)
    path = f"/participants/{person.id}"
    page = client.get(path)
    assert "This number may belong to someone else now" in page.get_data(as_text=True)
    token = csrf_from(page)
    refused = client.post(f"{path}/reply", data={"csrf_token": token, "body": "Is this Sam?"})
    assert refused.status_code == 422
    assert session.scalars(select(OutboundMessage)).all() == []
    session.rollback()  # end the read, or SQLite's writer waits for it
    sent = client.post(
        f"{path}/reply", data={"csrf_token": token, "body": "Is this Sam?", "number_ok": "yes"}
    )
    assert sent.status_code == 302
    assert session.scalars(select(OutboundMessage.body)).one() == "Is this Sam?"


def test_a_coordinator_changes_the_number_from_the_conversation_page(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    person = _setup(client, session, now)
    token = csrf_from(client.get(f"/participants/{person.id}"))
    response = client.post(
        f"/participants/{person.id}/number/change",
        data={"csrf_token": token, "phone": "+1 312 555 0177"},
    )
    assert response.status_code == 302
    session.expire_all()
    assert session.get_one(Participant, person.id).phone == "+13125550177"
    assert session.scalars(select(PhoneChange.old_phone)).one() == "+13125550150"
    assert numbers.open_flag(session, person.id) is None
