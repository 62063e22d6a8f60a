"""Dashboard imports: the preview is the import rolled back; confirming writes exactly what was
previewed, or nothing and the new preview."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import AuditLog, Participant, PendingImport, PlannedContact
from bot.services import import_preview
from bot.services.import_preview import (
    MAX_UPLOAD_BYTES,
    Counts,
    ImportContext,
    UploadRefused,
    clean_filename,
    confirm,
    decode_upload,
    find_pending,
    stage,
)
from bot.services.importer import ImportFailed
from scheduler.plan import plan
from tests.factories import make_participant, make_user

HEADER = "external_id,first_name,phone,release_date,timezone,language,coach_email,channel\n"
GOOD = (
    HEADER
    + "A-1,Maria,(202) 555-0101,2026-03-01,,es,,\n"
    + "A-2,Luis,+1 312 555 0102,2026-03-05,America/Denver,,,whatsapp\n"
)


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def context(session: Session, now: datetime) -> ImportContext:
    user = make_user(session, now, role="coordinator", email="cora@example.org")
    session.commit()
    return ImportContext(
        user_id=user.id,
        recorded_by="dashboard:cora@example.org",
        default_timezone="America/Chicago",
    )


def _stage(
    session: Session, now: datetime, context: ImportContext, text: str | bytes
) -> PendingImport:
    data = text.encode() if isinstance(text, str) else text
    pending = stage(
        session, kind="participants", filename="people.csv", data=data, now=now, context=context
    )
    session.commit()
    return pending


def test_preview_counts_what_the_import_would_do_and_writes_nothing(
    session: Session, now: datetime, context: ImportContext
) -> None:
    make_participant(session, now, external_id="A-1", first_name="Maria", phone="+12025550101")
    make_participant(session, now, external_id="A-9", phone="+12025550109")
    session.commit()
    text = (
        GOOD
        + "A-9,Sam,202-555-0109,2026-03-01,America/New_York,,,\n"  # unchanged
        + "A-3,Ana,202-555-0103,2026-03-07,,,,\n"
    )
    pending = _stage(session, now, context, text)
    # new language, zone (default Chicago) → updated and re-planned.
    assert Counts.from_dict(pending.counts) == Counts(
        created=2, updated=1, unchanged=1, replanned=1
    )
    assert count(session, Participant) == 2
    assert count(session, AuditLog) == 0
    assert pending.sha256 == import_preview.fingerprint(text)


def test_a_bad_line_is_named_and_nothing_is_kept_or_written(
    session: Session, now: datetime, context: ImportContext
) -> None:
    text = GOOD + "A-3,Ana,555-01,2026-03-07,,,,\n"
    with pytest.raises(ImportFailed) as failed:
        _stage(session, now, context, text)
    assert [str(e) for e in failed.value.errors] == [
        "line 4: phone: '555-01' is not a valid mobile number"
    ]
    assert count(session, Participant) == count(session, PendingImport) == 0


def test_confirming_writes_what_was_previewed_plans_and_audits_who_and_which_file(
    session: Session, now: datetime, context: ImportContext
) -> None:
    pending = _stage(session, now, context, GOOD)
    outcome = confirm(
        session, pending, sha256=pending.sha256, now=now, context=context, planner=plan
    )
    session.commit()
    assert outcome.written and outcome.counts == Counts(created=2)
    assert count(session, Participant) == 2
    assert count(session, PendingImport) == 0
    assert count(session, PlannedContact) > 0  # the welcome is planned at once
    row = session.scalars(select(AuditLog).where(AuditLog.action == "import.confirmed")).one()
    assert row.user_id == context.user_id
    assert row.detail is not None
    assert (row.detail["file"], row.detail["kind"], row.detail["created"]) == (
        "people.csv",
        "participants",
        2,
    )


def test_confirm_writes_nothing_and_shows_new_counts_when_the_data_changed_underneath(
    session: Session, now: datetime, context: ImportContext
) -> None:
    pending = _stage(session, now, context, GOOD)
    make_participant(session, now, external_id="A-1", first_name="Maria", phone="+12025550101")
    session.commit()
    outcome = confirm(session, pending, sha256=pending.sha256, now=now, context=context)
    session.commit()
    assert not outcome.written and outcome.changed
    assert outcome.counts == Counts(created=1, updated=1, replanned=1)
    assert count(session, Participant) == 1
    again = find_pending(session, pending.token, user_id=context.user_id, now=now)
    assert again is not None and Counts.from_dict(again.counts) == outcome.counts
    # Confirming the new preview writes it.
    assert confirm(session, again, sha256=again.sha256, now=now, context=context).written
    session.commit()
    assert count(session, Participant) == 2


def test_confirm_names_the_lines_that_no_longer_import_and_writes_nothing(
    session: Session, now: datetime, context: ImportContext
) -> None:
    pending = _stage(session, now, context, GOOD)
    make_participant(session, now, external_id="OTHER", phone="+13125550102")
    session.commit()
    outcome = confirm(session, pending, sha256=pending.sha256, now=now, context=context)
    session.commit()
    assert not outcome.written
    assert [str(e) for e in outcome.errors] == [
        "line 3: phone: the number already belongs to participant 'OTHER'"
    ]
    assert count(session, Participant) == 1


def test_confirm_refuses_a_file_that_is_not_the_one_previewed(
    session: Session, now: datetime, context: ImportContext
) -> None:
    first = _stage(session, now, context, GOOD)
    other = _stage(session, now, context, HEADER + "B-1,Bo,202-555-0111,2026-03-01,,,,\n")
    outcome = confirm(session, first, sha256=other.sha256, now=now, context=context)
    assert not outcome.written and outcome.problem
    first.content = GOOD + "B-2,Eve,202-555-0112,2026-03-01,,,,\n"  # tampered with in storage
    outcome = confirm(session, first, sha256=first.sha256, now=now, context=context)
    session.commit()
    assert not outcome.written and outcome.problem
    assert count(session, Participant) == 0


def test_a_pending_import_is_the_uploaders_own_and_expires_after_an_hour(
    session: Session, now: datetime, context: ImportContext
) -> None:
    pending = _stage(session, now, context, GOOD)
    other = make_user(session, now, role="coordinator")
    session.commit()
    assert find_pending(session, pending.token, user_id=context.user_id, now=now) is not None
    assert find_pending(session, pending.token, user_id=other.id, now=now) is None
    later = now + timedelta(hours=1)
    assert find_pending(session, pending.token, user_id=context.user_id, now=later) is None
    assert import_preview.purge_expired(session, later) == 1


def test_appointments_preview_counts_moves_as_replanned(
    session: Session, now: datetime, context: ImportContext
) -> None:
    make_participant(session, now, external_id="A-1")
    session.commit()
    header = "external_id,kind,starts_at,location,appointment_id\n"
    first = stage(
        session,
        kind="appointments",
        filename="appts.csv",
        data=(header + "A-1,court,2026-03-20T09:30,,X-1\n").encode(),
        now=now,
        context=context,
    )
    assert confirm(session, first, sha256=first.sha256, now=now, context=context).written
    session.commit()
    moved = stage(
        session,
        kind="appointments",
        filename="appts.csv",
        data=(
            header + "A-1,court,2026-03-21T09:30,,X-1\nA-1,medical,2026-03-25T14:00,,\n"
        ).encode(),
        now=now,
        context=context,
    )
    assert Counts.from_dict(moved.counts) == Counts(created=1, updated=1, replanned=1)


def test_utf8_with_or_without_bom_reads_the_same() -> None:
    assert decode_upload(b"\xef\xbb\xbf" + GOOD.encode()) == decode_upload(GOOD.encode()) == GOOD


@pytest.mark.parametrize(
    ("data", "line", "says"),
    [
        ((HEADER + "A-1,Jos\xe9,202-555-0101,2026-03-01,,,,\n").encode("cp1252"), 2, "0xe9"),
        ("\ufeff".encode("utf-16-le") + HEADER.encode("utf-16-le"), 1, "UTF-16"),
        (b"PK\x03\x04rest-of-a-workbook", 1, "workbook"),
        ((HEADER + "A-1,Jo\x00,1,2\n").encode(), 2, "NUL"),
    ],
)
def test_other_encodings_are_refused_with_the_line_and_what_to_do(
    data: bytes, line: int, says: str
) -> None:
    with pytest.raises(UploadRefused) as refused:
        decode_upload(data)
    [error] = refused.value.errors
    assert error.line == line and says in error.message and "CSV UTF-8" in error.message


def test_a_file_over_the_limit_or_empty_is_refused_in_words() -> None:
    with pytest.raises(UploadRefused, match="larger than 5 MB"):
        decode_upload(b"x" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(UploadRefused, match="empty"):
        decode_upload(b"  \n")


def test_the_file_name_keeps_only_its_own_name() -> None:
    assert clean_filename("C:\\Users\\ana\\people.csv") == "people.csv"
    assert clean_filename("../../etc/x\x07.csv") == "x.csv"
    assert clean_filename("") == "upload.csv"
