"""Appointment places are checked at import with the templates' sensitive-word rules: a
program that refuses them gets a line error and nothing written; otherwise the line imports and
is listed as a warning (CLI, dashboard preview and confirm), never in the audit log."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import Appointment, AuditLog, PendingImport
from bot.services.import_preview import ImportContext, confirm, pending_warnings, stage
from bot.services.importer import ImportFailed, ImportSummary, import_appointments
from bot.services.settings import DEFAULT_SETTINGS, set_setting
from tests.factories import make_participant, make_user

HEADER = "external_id,kind,starts_at,location,appointment_id\n"
FILE = (
    HEADER
    + "P-1,benefits,2026-04-01T09:00,Main St Library,A-1\n"  # line 2: neutral
    + "P-1,court,2026-04-02T09:00,County Cоurt Room 3,A-2\n"  # line 3: a Cyrillic о
    + "P-1,supervision,2026-04-03T09:00,P.O. office,A-3\n"  # line 4
    + "P-1,other,2026-04-04T09:00,,A-4\n"  # line 5: no place
    + "P-1,medical,2026-04-05T09:00,prob@tion dept,A-5\n"  # line 6
    + "P-1,housing,2026-04-06T09:00,C0urt annex,A-6\n"  # line 7
)
SENSITIVE_LINES = [3, 4, 6, 7]


def _handling(session: Session, now: datetime, handling: str, include: bool = True) -> None:
    value = {**DEFAULT_SETTINGS["locations"], "sensitive": handling}
    value["include_in_reminders"] = include
    set_setting(session, "locations", value, now=now, user_id=None)


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def person(session: Session, now: datetime) -> None:
    make_participant(session, now, external_id="P-1", timezone="America/New_York")
    session.commit()


def _import(session: Session, now: datetime, text: str = FILE) -> ImportSummary:
    return import_appointments(session, io.StringIO(text), now=now, recorded_by="test")


def test_a_program_that_refuses_sensitive_places_names_each_line_and_imports_nothing(
    session: Session, now: datetime, person: None
) -> None:
    _handling(session, now, "refuse")
    session.commit()
    with pytest.raises(ImportFailed) as caught:
        _import(session, now)
    session.rollback()
    assert [e.line for e in caught.value.errors] == SENSITIVE_LINES
    first = str(caught.value.errors[0])
    assert first.startswith(
        "line 3: location: 'County Cоurt Room 3' has a sensitive word (“court”)"
    )
    assert "write a neutral place" in first
    assert "(“PO”)" in str(caught.value.errors[1])
    assert "(“probation”)" in str(caught.value.errors[2])
    assert _count(session, Appointment) == 0


def test_by_default_sensitive_places_import_with_a_warning_per_line(
    session: Session, now: datetime, person: None
) -> None:
    summary = _import(session, now)
    session.commit()
    assert _count(session, Appointment) == 6
    warnings = [str(w) for w in summary.warnings]
    assert [w.split(":")[0] for w in warnings] == [f"line {n}" for n in SENSITIVE_LINES]
    assert warnings[0] == (
        "line 3: location: 'County Cоurt Room 3' (P-1) has a sensitive word (“court”); "
        "reminders will say “the place you were given” (Spanish: “el lugar que te indicaron”) "
        "instead of naming it"
    )
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "import.appointments")).one()
    assert audit.detail is not None and audit.detail["places_withheld_lines"] == SENSITIVE_LINES
    assert "Cоurt" not in str(audit.detail) and "office" not in str(audit.detail)


def test_a_program_that_never_names_places_imports_them_without_a_word(
    session: Session, now: datetime, person: None
) -> None:
    _handling(session, now, "refuse", include=False)
    session.commit()
    summary = _import(session, now)
    assert summary.warnings == []
    assert _count(session, Appointment) == 6


@pytest.fixture
def context(session: Session, now: datetime) -> ImportContext:
    user = make_user(session, now, role="coordinator", email="cora@example.org")
    session.commit()
    return ImportContext(user.id, "dashboard:cora@example.org", "America/Chicago")


def test_the_dashboard_preview_keeps_the_warnings_and_confirm_returns_them(
    session: Session, now: datetime, person: None, context: ImportContext
) -> None:
    pending = stage(
        session, kind="appointments", filename="a.csv", data=FILE.encode(), now=now, context=context
    )
    session.commit()
    assert _count(session, Appointment) == 0
    shown = pending_warnings(pending)
    assert [w.split(":")[0] for w in shown] == [f"line {n}" for n in SENSITIVE_LINES]
    outcome = confirm(session, pending, sha256=pending.sha256, now=now, context=context)
    session.commit()
    assert outcome.written and outcome.warnings == shown
    assert _count(session, Appointment) == 6 and _count(session, PendingImport) == 0
    confirmed = session.scalars(select(AuditLog).where(AuditLog.action == "import.confirmed")).one()
    assert "warnings" not in (confirmed.detail or {})
