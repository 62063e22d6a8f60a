"""Consent evidence (issue 19.3): imports and the participant form take how and when consent
was given; a row without them records consent as asserted by that import (file, who, when);
the consent record keeps source, date, wording and who recorded it; the waiting list."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import AuditLog, ConsentEvent, Participant
from bot.services import consent, consent_evidence
from bot.services import participants_editing as editing
from bot.services.consent import consent_history, opt_out
from bot.services.importer import ImportFailed, ImportSummary, import_participants
from bot.services.settings import set_setting
from tests.factories import make_participant, make_user

HEADER = "external_id,first_name,phone,release_date,consent_source,consent_date\n"


def run_import(
    session: Session,
    now: datetime,
    text: str,
    *,
    filename: str | None = "people.csv",
    user_id: int | None = None,
    recorded_by: str = "cli:ana",
) -> ImportSummary:
    return import_participants(
        session,
        io.StringIO(text),
        now=now,
        default_timezone="America/Chicago",
        recorded_by=recorded_by,
        filename=filename,
        recorded_by_id=user_id,
    )


def consents(session: Session, external_id: str) -> list[ConsentEvent]:
    pid = session.scalars(
        select(Participant.id).where(Participant.external_id == external_id)
    ).one()
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.participant_id == pid, ConsentEvent.kind == "consent")
            .order_by(ConsentEvent.id)
        )
    )


def require_evidence(session: Session, now: datetime, on: bool = True) -> None:
    set_setting(session, "consent", {"require_consent_evidence": on}, now=now, user_id=None)
    session.flush()


# --- the import --------------------------------------------------------------------------


def test_a_row_with_a_consent_source_and_date_records_them(session: Session, now: datetime) -> None:
    run_import(
        session,
        now,
        HEADER + "C-1,Maria,202-555-0101,2026-03-01,signed enrolment form,2026-02-20\n",
    )
    (event,) = consents(session, "C-1")
    assert (event.source, event.consent_date) == ("signed enrolment form", date(2026, 2, 20))
    assert (event.method, event.import_file, event.recorded_by, event.at) == (
        "import",
        "people.csv",
        "cli:ana",
        now,
    )


def test_a_row_without_them_records_consent_as_asserted_by_that_import(
    session: Session, now: datetime
) -> None:
    ana = make_user(session, now, email="ana@example.org", name="Ana Ortiz", role="coordinator")
    run_import(
        session,
        now,
        "external_id,first_name,phone,release_date\nC-2,Luis,202-555-0102,2026-03-01\n",
        filename="march intake.csv",
        user_id=ana.id,
        recorded_by="dashboard:ana@example.org",
    )
    (event,) = consents(session, "C-2")
    assert event.source is None and event.consent_date is None
    assert (event.import_file, event.recorded_by_id, event.at) == ("march intake.csv", ana.id, now)
    participant = session.get_one(Participant, event.participant_id)
    (entry,) = consent_history(session, participant)
    assert entry.asserted and entry.recorded_by == "Ana Ortiz"


def test_the_two_columns_are_optional_row_by_row(session: Session, now: datetime) -> None:
    run_import(
        session,
        now,
        HEADER
        + "C-3,Ada,202-555-0103,2026-03-01,verbal consent at intake,\n"
        + "C-4,Bo,202-555-0104,2026-03-01,,\n",
    )
    assert [(e.source, e.consent_date) for e in consents(session, "C-3")] == [
        ("verbal consent at intake", None)
    ]
    assert [e.source for e in consents(session, "C-4")] == [None]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "C-5,Eve,202-555-0105,2026-03-01,signed form,2026-02-30",
            "line 3: consent_date: '2026-02-30' is not a date like 2026-03-14",
        ),
        (
            "C-5,Eve,202-555-0105,2026-03-01,signed form,20/02/2026",
            "line 3: consent_date: '20/02/2026' is not a date like 2026-03-14",
        ),
        (
            "C-5,Eve,202-555-0105,2026-03-01,,2026-02-20",
            "line 3: consent_date: give consent_source too (how consent was given, e.g. "
            "'signed enrolment form')",
        ),
        (
            "C-5,Eve,202-555-0105,2026-03-01,signed form,2027-01-01",
            "line 3: consent_date: '2027-01-01' is in the future",
        ),
        (
            f"C-5,Eve,202-555-0105,2026-03-01,{'x' * 201},",
            "line 3: consent_source: is longer than 200 characters",
        ),
    ],
)
def test_a_bad_consent_value_names_its_line_and_nothing_is_imported(
    session: Session, now: datetime, row: str, message: str
) -> None:
    text = HEADER + "C-4,Bo,202-555-0104,2026-03-01,signed form,2026-02-01\n" + row + "\n"
    with pytest.raises(ImportFailed) as caught:
        run_import(session, now, text)
    session.rollback()
    assert [str(e) for e in caught.value.errors] == [message]
    assert session.scalar(select(func.count()).select_from(Participant)) == 0
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_re_importing_with_a_source_records_the_evidence_once(
    session: Session, now: datetime
) -> None:
    run_import(session, now, HEADER + "C-6,Cy,202-555-0106,2026-03-01,,\n")
    later = now + timedelta(days=2)
    with_source = HEADER + "C-6,Cy,202-555-0106,2026-03-01,signed enrolment form,2026-02-27\n"
    summary = run_import(session, later, with_source, filename="evidence.csv")
    assert (summary.updated, summary.unchanged) == (1, 0)
    again = run_import(session, later + timedelta(hours=1), with_source)
    assert (again.updated, again.unchanged) == (0, 1)
    asserted, evidence = consents(session, "C-6")
    assert asserted.source is None
    assert (evidence.source, evidence.consent_date, evidence.import_file, evidence.at) == (
        "signed enrolment form",
        date(2026, 2, 27),
        "evidence.csv",
        later,
    )
    audit = session.scalars(
        select(AuditLog).where(AuditLog.action == "participant.consent_evidence")
    ).all()
    assert len(audit) == 1


def test_re_importing_without_a_source_keeps_the_evidence_on_file(
    session: Session, now: datetime
) -> None:
    run_import(session, now, HEADER + "C-7,Di,202-555-0107,2026-03-01,signed form,2026-02-27\n")
    summary = run_import(
        session, now + timedelta(days=1), HEADER + "C-7,Di,202-555-0107,2026-03-01,,\n"
    )
    assert summary.unchanged == 1
    assert [e.source for e in consents(session, "C-7")] == ["signed form"]


def test_the_database_refuses_a_consent_date_without_a_source(
    session: Session, now: datetime
) -> None:
    person = make_participant(session, now)
    session.add(
        ConsentEvent(
            participant_id=person.id,
            kind="consent",
            at=now,
            method="import",
            consent_date=date(2026, 2, 1),
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


# --- the participant form ------------------------------------------------------------------


def _form(**overrides: str) -> dict[str, str]:
    values = {
        "first_name": "Rae",
        "last_name": "",
        "phone": "202-555-0141",
        "channel": "sms",
        "timezone": "America/Chicago",
        "language": "en",
        "release_date": "2026-03-01",
        "coach_id": "",
        "external_id": "",
        "consent_source": "",
        "consent_date": "",
    }
    values.update(overrides)
    return values


def test_the_form_records_a_source_and_date_with_the_staff_member(
    session: Session, now: datetime
) -> None:
    cora = make_user(session, now, role="coordinator", name="Cora Diaz")
    values = editing.check_form(
        session,
        _form(consent_source="signed enrolment form", consent_date="2026-02-26"),
        default_timezone="America/Chicago",
        now=now,
    )
    person = editing.create_participant(session, values, now=now, user_id=cora.id)
    (entry,) = consent_history(session, person)
    assert (entry.event.source, entry.event.consent_date, entry.event.method) == (
        "signed enrolment form",
        date(2026, 2, 26),
        "dashboard",
    )
    assert entry.recorded_by == "Cora Diaz" and not entry.asserted


def test_the_form_without_a_source_records_consent_asserted_by_the_staff_member(
    session: Session, now: datetime
) -> None:
    cora = make_user(session, now, role="coordinator", name="Cora Diaz")
    values = editing.check_form(session, _form(), default_timezone="America/Chicago", now=now)
    person = editing.create_participant(session, values, now=now, user_id=cora.id)
    (entry,) = consent_history(session, person)
    assert entry.asserted and entry.recorded_by == "Cora Diaz"


def test_the_form_gives_the_importers_words_for_a_bad_consent_date(
    session: Session, now: datetime
) -> None:
    with pytest.raises(editing.ParticipantInvalid) as caught:
        editing.check_form(
            session,
            _form(consent_source="signed form", consent_date="yesterday"),
            default_timezone="America/Chicago",
            now=now,
        )
    assert caught.value.errors == {"consent_date": "'yesterday' is not a date like 2026-03-14"}


def test_editing_with_a_source_adds_evidence_and_keeps_the_assertion(
    session: Session, now: datetime
) -> None:
    cora = make_user(session, now, role="coordinator", name="Cora Diaz")
    person = editing.create_participant(
        session,
        editing.check_form(session, _form(), default_timezone="America/Chicago", now=now),
        now=now,
        user_id=cora.id,
    )
    later = now + timedelta(hours=3)
    form = editing.form_values(person)
    assert (form["consent_source"], form["consent_date"]) == ("", "")
    form.update(consent_source="signed enrolment form", consent_date="2026-02-26")
    values = editing.check_form(
        session, form, default_timezone="America/Chicago", participant=person, now=later
    )
    changes = editing.edit_participant(session, person, values, now=later, user_id=cora.id)
    assert changes == {"consent": ["", "recorded"]}
    newest, oldest = consent_history(session, person)
    assert (newest.event.source, newest.event.at) == ("signed enrolment form", later)
    assert oldest.asserted
    # The same evidence again changes nothing.
    values = editing.check_form(
        session, form, default_timezone="America/Chicago", participant=person, now=later
    )
    assert editing.edit_participant(session, person, values, now=later, user_id=cora.id) == {}


# --- who is waiting ------------------------------------------------------------------------


def test_nobody_waits_while_the_program_does_not_require_evidence(
    session: Session, now: datetime
) -> None:
    cora = make_user(session, now, role="coordinator")
    run_import(session, now, HEADER + "W-1,Ana,202-555-0121,2026-03-01,,\n")
    assert consent_evidence.waiting(session, cora, now) == []
    assert consent_evidence.waiting_count(session, cora) == 0


def test_the_waiting_list_names_who_has_no_source_and_how_consent_was_asserted(
    session: Session, now: datetime
) -> None:
    cora = make_user(session, now, role="coordinator")
    run_import(
        session,
        now,
        HEADER
        + "W-1,Ana,202-555-0121,2026-03-01,,\n"
        + "W-2,Ben,202-555-0122,2026-03-01,signed form,2026-02-01\n"
        + "W-3,Cal,202-555-0123,2026-03-01,,\n",
        filename="intake.csv",
    )
    cal = session.scalars(select(Participant).where(Participant.external_id == "W-3")).one()
    opt_out(session, cal, now=now, method="keyword", wording="STOP")  # gets nothing anyway
    require_evidence(session, now)
    (waiting,) = consent_evidence.waiting(session, cora, now)
    assert waiting.label == "Ana (W-1)"
    assert (waiting.asserted_method, waiting.asserted_file, waiting.asserted_by) == (
        "import",
        "intake.csv",
        "cli:ana",
    )
    assert consent_evidence.waiting_count(session, cora) == 1


def test_a_coach_sees_only_their_own_caseload_waiting(session: Session, now: datetime) -> None:
    coach = make_user(session, now)
    mine = make_participant(session, now, coach_id=coach.id)
    make_participant(session, now)  # someone else's
    for person in (mine, *session.scalars(select(Participant).where(Participant.id != mine.id))):
        consent.record_consent(
            session,
            [(person.id, consent.Evidence())],
            now=now,
            recorder=consent.Recorder("import"),
        )
    require_evidence(session, now)
    assert [w.participant_id for w in consent_evidence.waiting(session, coach, now)] == [mine.id]


def test_recording_a_source_takes_someone_off_the_waiting_list(
    session: Session, now: datetime
) -> None:
    cora = make_user(session, now, role="coordinator")
    run_import(session, now, HEADER + "W-4,Dee,202-555-0124,2026-03-01,,\n")
    require_evidence(session, now)
    person = session.scalars(select(Participant).where(Participant.external_id == "W-4")).one()
    assert consent_evidence.is_held(session, person)
    assert consent.record_evidence(
        session,
        person,
        consent.Evidence("signed enrolment form", date(2026, 2, 28)),
        now=now,
        recorder=consent.Recorder("dashboard", user_id=cora.id),
    )
    assert not consent_evidence.is_held(session, person)
    assert consent_evidence.waiting(session, cora, now) == []
