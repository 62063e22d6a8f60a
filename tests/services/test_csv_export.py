"""Exports neutralise cells a spreadsheet would read as formulas (issue 17.7)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from bot.services.csv_export import SafeWriter, spreadsheet_safe
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import login


@pytest.mark.parametrize(
    "cell",
    ['=HYPERLINK("http://x.example","x")', "+SUM(1)", "-2+3", "@cmd", "\t=1", "\r=1", "=1"],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(cell: str) -> None:
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["Sam", "+12025550100", "-3", "-0.25", "", "a=b", "O'Neil"])
def test_text_and_plain_numbers_are_left_alone(cell: str) -> None:
    assert spreadsheet_safe(cell) == cell


def test_non_strings_pass_through() -> None:
    assert spreadsheet_safe(3) == 3 and spreadsheet_safe(None) is None


def test_the_safe_writer_quotes_every_dangerous_cell_of_a_row() -> None:
    out = io.StringIO()
    SafeWriter(out, lineterminator="\n").writerow(["=1+1", "ok", 5])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["'=1+1", "ok", "5"]


def test_participants_csv_exports_formula_names_as_text(
    client: FlaskClient, session: Session, now: datetime
) -> None:
    make_user(session, now, email="cora@example.org", role="coordinator")
    names = ["=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(A1)"]
    for i, name in enumerate(names):
        make_participant(session, now, external_id=f"F-{i}", first_name=name)
    session.commit()
    login(client, "cora@example.org")

    response = client.get("/participants.csv")

    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(r["first_name"] for r in rows) == sorted("'" + n for n in names)
    assert all(r["phone"].startswith("+1") for r in rows)  # phones stay as they are
