"""CSV imports are all-or-nothing and name every bad line the way the file numbers it."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import Appointment, AuditLog, ConsentEvent, Participant
from bot.services.importer import ImportFailed, import_appointments, import_participants
from tests.factories import make_participant, make_user

HEADER = "external_id,first_name,phone,release_date,timezone,language,coach_email,channel\n"


def run_participants(session: Session, now: datetime, text: str) -> object:
    return import_participants(
        session, io.StringIO(text), now=now, default_timezone="America/Chicago", recorded_by="test"
    )


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_good_file_creates_participants_with_normalised_phones_and_consent(
    session: Session, now: datetime
) -> None:
    make_user(session, now, email="rosa@example.org")
    summary = run_participants(
        session,
        now,
        HEADER
        + "A-1,Maria,(202) 555-0101,2026-03-01,,es,rosa@example.org,\n"
        + "A-2,Luis,+1 312 555 0102,2026-03-05,America/Denver,,,whatsapp\n",
    )
    session.commit()
    assert str(summary).startswith("2 created, 0 updated")
    maria = session.scalars(select(Participant).where(Participant.external_id == "A-1")).one()
    assert (maria.phone, maria.timezone, maria.language, maria.channel) == (
        "+12025550101",
        "America/Chicago",
        "es",
        "sms",
    )
    assert maria.coach_id is not None and maria.consent_method == "import"
    luis = session.scalars(select(Participant).where(Participant.external_id == "A-2")).one()
    assert (luis.timezone, luis.channel, luis.address) == (
        "America/Denver",
        "whatsapp",
        "whatsapp:+13125550102",
    )
    assert count(session, ConsentEvent) == 2
    assert count(session, AuditLog) == 1


def test_bad_file_names_every_bad_line_and_imports_nothing(session: Session, now: datetime) -> None:
    make_participant(session, now, external_id="OLD-1", phone="+12025550199")
    session.commit()
    text = (
        HEADER
        + "B-1,Ok,202-555-0111,2026-03-01,,,,\n"  # line 2: good
        + "B-2,Bad Phone,555-01,2026-03-01,,,,\n"  # line 3
        + "B-3,Bad Zone,202-555-0113,2026-03-01,Mars/Base,,,\n"  # line 4
        + "B-4,Bad Date,202-555-0114,03/01/2026,,,,\n"  # line 5
        + "B-5,Bad Coach,202-555-0115,2026-03-01,,,nobody@example.org,\n"  # line 6
        + "B-1,Twin,202-555-0116,2026-03-01,,,,\n"  # line 7: duplicate id
        + "B-7,,202-555-0117,2026-03-01,,fr,,pager\n"  # line 8: three problems
        + "B-8,Taken,202-555-0199,2026-03-01,,,,\n"  # line 9: phone of OLD-1
        + "B-9,Toll Free,+1 800 555 0100,2026-03-01,,,,\n"  # line 10
    )
    with pytest.raises(ImportFailed) as caught:
        run_participants(session, now, text)
    session.rollback()
    messages = [str(e) for e in caught.value.errors]
    assert "line 3: phone: '555-01' is not a valid mobile number" in messages
    assert any(m.startswith("line 4: timezone: 'Mars/Base'") for m in messages)
    assert any(m.startswith("line 5: release_date: '03/01/2026'") for m in messages)
    assert any(m.startswith("line 6: coach_email:") for m in messages)
    assert "line 7: external_id: 'B-1' is also on line 2" in messages
    assert {m.split(":")[1].strip() for m in messages if m.startswith("line 8:")} == {
        "first_name",
        "language",
        "channel",
    }
    assert "line 9: phone: the number already belongs to participant 'OLD-1'" in messages
    assert any(m.startswith("line 10: phone:") for m in messages)
    assert not any(m.startswith("line 2:") for m in messages)
    assert count(session, Participant) == 1  # only OLD-1


def test_missing_column_is_reported_on_the_header_line(session: Session, now: datetime) -> None:
    with pytest.raises(ImportFailed) as caught:
        run_participants(session, now, "external_id,first_name,release_date\nX,Y,2026-01-01\n")
    assert [str(e) for e in caught.value.errors] == ["line 1: missing column(s): phone"]


def test_line_numbers_count_blank_lines_and_quoted_newlines(
    session: Session, now: datetime
) -> None:
    text = (
        HEADER
        + "\n"
        + 'C-1,"Ann\nMarie",202-555-0121,2026-03-01,,,,\n'
        + "C-2,Bo,bad,2026-03-01,,,,\n"
    )
    with pytest.raises(ImportFailed) as caught:
        run_participants(session, now, text)
    assert [str(e) for e in caught.value.errors] == [
        "line 5: phone: 'bad' is not a valid mobile number"
    ]


def test_row_with_extra_fields_is_refused(session: Session, now: datetime) -> None:
    with pytest.raises(ImportFailed) as caught:
        run_participants(session, now, HEADER + "D-1,Al,202-555-0131,2026-03-01,,,,,surprise\n")
    assert [str(e) for e in caught.value.errors] == ["line 2: has more fields than the header"]


def test_reimport_updates_by_external_id_and_bumps_plan_on_release_date_change(
    session: Session, now: datetime
) -> None:
    run_participants(session, now, HEADER + "E-1,Eve,202-555-0141,2026-03-01,,,,\n")
    session.commit()
    again = run_participants(session, now, HEADER + "E-1,Eve,202-555-0141,2026-03-01,,,,\n")
    assert str(again).startswith("0 created, 0 updated, 1 unchanged")
    moved = run_participants(session, now, HEADER + "E-1,Evie,202-555-0141,2026-03-04,,,,\n")
    session.commit()
    assert str(moved) == "0 created, 1 updated, 0 unchanged, 1 re-planned"
    eve = session.scalars(select(Participant).where(Participant.external_id == "E-1")).one()
    assert (eve.first_name, eve.release_date, eve.plan_version) == ("Evie", date(2026, 3, 4), 2)
    assert count(session, Participant) == 1


APPT_HEADER = "external_id,kind,starts_at,location,appointment_id\n"


def test_appointments_import_local_times_in_the_participants_zone(
    session: Session, now: datetime
) -> None:
    make_participant(session, now, external_id="F-1", timezone="America/New_York")
    session.commit()
    import_appointments(
        session,
        io.StringIO(
            APPT_HEADER
            + "F-1,supervision,2026-03-08T02:30,Main St,APPT-1\n"  # spring-forward gap
            + "F-1,medical,2026-11-01T01:30,,APPT-2\n"  # repeated hour: first
            + "F-1,court,2026-04-01T09:00-05:00,,\n"  # explicit offset wins
        ),
        now=now,
        recorded_by="test",
    )
    session.commit()
    starts = {a.source_id: a.starts_at for a in session.scalars(select(Appointment))}
    assert starts["APPT-1"] == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert starts["APPT-2"] == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert starts[None] == datetime(2026, 4, 1, 14, 0, tzinfo=UTC)


def test_appointment_reimport_with_same_id_moves_it(session: Session, now: datetime) -> None:
    make_participant(session, now, external_id="G-1")
    session.commit()
    for starts in ("2026-03-10T09:00", "2026-03-12T11:00"):
        import_appointments(
            session,
            io.StringIO(APPT_HEADER + f"G-1,benefits,{starts},,B-77\n"),
            now=now,
            recorded_by="test",
        )
        session.commit()
    [appointment] = session.scalars(select(Appointment)).all()
    assert appointment.starts_at == datetime(2026, 3, 12, 15, 0, tzinfo=UTC)
    assert appointment.version == 2


def test_bad_appointments_file_names_every_line(session: Session, now: datetime) -> None:
    make_participant(session, now, external_id="H-1")
    session.commit()
    text = (
        APPT_HEADER
        + "H-1,court,2026-03-10T09:00,,X1\n"
        + "NOPE,court,2026-03-10T09:00,,\n"
        + "H-1,parole,2026-03-10T09:00,,\n"
        + "H-1,court,next tuesday,,\n"
        + "H-1,court,2026-03-11T09:00,,X1\n"
    )
    with pytest.raises(ImportFailed) as caught:
        import_appointments(session, io.StringIO(text), now=now, recorded_by="test")
    messages = [str(e) for e in caught.value.errors]
    assert messages == [
        "line 3: external_id: no participant 'NOPE'",
        "line 4: kind: 'parole' is not one of court, supervision, treatment, benefits, medical, housing, other",
        "line 5: starts_at: 'next tuesday' is not a date-time like 2026-03-14T09:30",
        "line 6: appointment_id: 'X1' is also on line 2",
    ]
    session.rollback()
    assert count(session, Appointment) == 0
