"""/imports: upload, preview (nothing written), confirm (all or nothing), on SQLite and PG."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bot.models import AuditLog, Participant, PendingImport, PlannedContact
from bot.services.import_preview import MAX_UPLOAD_BYTES
from tests.factories import make_participant, make_user
from tests.web.dashboard_helpers import csrf, csrf_from, login

HEADER = "external_id,first_name,phone,release_date,timezone,language,coach_email,channel\n"
GOOD = (
    HEADER
    + "A-1,Maria,(202) 555-0101,2026-03-01,,es,,\n"
    + "A-2,Luis,+1 312 555 0102,2026-03-05,America/Denver,,,whatsapp\n"
)


@pytest.fixture
def staff(sessions: sessionmaker[Session], now: datetime) -> None:
    with sessions() as session:
        make_user(session, now, role="coordinator", email="cora@example.org", name="Cora Diaz")
        make_user(session, now, role="admin", email="ada@example.org", name="Ada Admin")
        make_user(session, now, role="coach", email="marcus@example.org", name="Marcus Lee")
        session.commit()


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def upload(
    client: FlaskClient, data: bytes | str, kind: str = "participants", name: str = "people.csv"
) -> TestResponse:
    body = data.encode() if isinstance(data, str) else data
    return client.post(
        "/imports",
        data={
            "kind": kind,
            "file": (io.BytesIO(body), name),
            "csrf_token": csrf(client, "/imports"),
        },
        content_type="multipart/form-data",
    )


def confirm(client: FlaskClient, preview: TestResponse, path: str) -> TestResponse:
    page = preview.get_data(as_text=True)
    sha = re.search(r'name="sha256" value="([0-9a-f]{64})"', page)
    assert sha, "the preview has no confirm form"
    return client.post(path, data={"csrf_token": csrf_from(preview), "sha256": sha.group(1)})


def counts_on(page: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', page)}


@pytest.mark.parametrize("path", ["/imports", "/imports/some-token"])
def test_coaches_cannot_open_imports(client: FlaskClient, staff: None, path: str) -> None:
    login(client, "marcus@example.org")
    assert client.get(path).status_code == 403
    assert 'href="/imports"' not in client.get("/").get_data(as_text=True)


def test_a_bad_line_is_named_and_nothing_is_written(
    client: FlaskClient, staff: None, sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    response = upload(client, GOOD + "A-3,Ana,555-01,2026-03-07,,,,\n")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "line 4: phone: &#39;555-01&#39; is not a valid mobile number" in page
    assert "Nothing was imported" in page
    assert count(sessions, Participant) == count(sessions, PendingImport) == 0


def test_a_good_upload_previews_counts_writes_nothing_until_confirmed_then_all_of_it(
    client: FlaskClient, staff: None, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions() as session:
        make_participant(session, now, external_id="A-1", first_name="Maria", phone="+12025550101")
        session.commit()
    login(client, "cora@example.org")
    response = upload(client, GOOD)
    assert response.status_code == 302
    path = response.headers["Location"]
    preview = client.get(path)
    page = preview.get_data(as_text=True)
    assert counts_on(page) == {"created": 1, "updated": 1, "unchanged": 0, "replanned": 0}
    assert "Nothing has been written yet" in page and "people.csv" in page
    assert count(sessions, Participant) == 1

    done = confirm(client, preview, path)
    assert done.status_code == 302 and done.headers["Location"].endswith("/imports")
    after = client.get("/imports").get_data(as_text=True)
    assert "Imported participants from people.csv: 1 created, 1 updated" in after
    assert "Cora Diaz" in after  # the recent imports say who
    assert count(sessions, Participant) == 2
    assert count(sessions, PendingImport) == 0
    assert count(sessions, PlannedContact) > 0  # planned at once, not at the next tick
    with sessions() as session:
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "import.confirmed")).one()
        assert audit.detail is not None and audit.detail["file"] == "people.csv"
    # The confirmed import cannot be confirmed twice.
    assert confirm(client, preview, path).status_code == 410


def test_confirm_shows_the_new_preview_when_the_data_changed_and_writes_nothing(
    client: FlaskClient, staff: None, sessions: sessionmaker[Session], now: datetime
) -> None:
    login(client, "cora@example.org")
    path = upload(client, GOOD).headers["Location"]
    preview = client.get(path)
    with sessions() as session:
        make_participant(session, now, external_id="A-2", first_name="Luis", phone="+13125550102")
        session.commit()
    changed = confirm(client, preview, path)
    assert changed.status_code == 409
    page = changed.get_data(as_text=True)
    assert "The data changed since the preview" in page
    assert counts_on(page) == {"created": 1, "updated": 1, "unchanged": 0, "replanned": 1}
    assert count(sessions, Participant) == 1
    assert confirm(client, changed, path).status_code == 302
    assert count(sessions, Participant) == 2


def test_a_pending_import_is_only_the_uploaders_and_lasts_an_hour(
    client: FlaskClient, app: object, staff: None, sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    path = upload(client, GOOD).headers["Location"]
    assert client.get(path).status_code == 200
    other = client.application.test_client()
    login(other, "ada@example.org")
    assert other.get(path).status_code == 410
    with time_machine.travel(datetime.now() + timedelta(hours=1, minutes=1)):
        gone = client.get(path)
    assert gone.status_code == 410
    assert "more than an hour old" in gone.get_data(as_text=True)


def test_confirm_refuses_another_files_fingerprint(
    client: FlaskClient, staff: None, sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    path = upload(client, GOOD).headers["Location"]
    response = client.post(path, data={"csrf_token": csrf(client, "/imports"), "sha256": "0" * 64})
    assert response.status_code == 409
    assert "not the file that was previewed" in response.get_data(as_text=True)
    assert count(sessions, Participant) == 0


def test_confirm_without_the_form_token_is_refused(
    client: FlaskClient, staff: None, sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    path = upload(client, GOOD).headers["Location"]
    assert client.post(path, data={"sha256": "0" * 64}).status_code == 400
    assert count(sessions, Participant) == 0


def test_cancel_forgets_the_file(
    client: FlaskClient, staff: None, sessions: sessionmaker[Session]
) -> None:
    login(client, "cora@example.org")
    path = upload(client, GOOD).headers["Location"]
    response = client.post(path + "/cancel", data={"csrf_token": csrf(client, "/imports")})
    assert response.status_code == 302
    assert count(sessions, PendingImport) == count(sessions, Participant) == 0


def test_utf8_with_a_byte_order_mark_is_read_and_other_encodings_are_refused_by_line(
    client: FlaskClient, staff: None, sessions: sessionmaker[Session]
) -> None:
    login(client, "ada@example.org")
    assert upload(client, b"\xef\xbb\xbf" + GOOD.encode()).status_code == 302
    latin = (HEADER + "A-9,Jos\xe9,202-555-0109,2026-03-01,,,,\n").encode("cp1252")
    response = upload(client, latin)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "line 2: byte 0xe9 is not UTF-8" in page and "CSV UTF-8" in page


def test_an_upload_over_5_mb_is_refused_in_words(client: FlaskClient, staff: None) -> None:
    login(client, "cora@example.org")
    just_over = upload(client, b"x" * (MAX_UPLOAD_BYTES + 10))
    assert just_over.status_code == 422
    assert "larger than 5 MB" in just_over.get_data(as_text=True)
    far_over = upload(client, b"x" * (MAX_UPLOAD_BYTES + 200 * 1024))
    assert far_over.status_code == 413
    assert "larger than 5 MB" in far_over.get_data(as_text=True)


def test_appointments_upload_needs_a_known_kind_and_names_unknown_participants(
    client: FlaskClient, staff: None
) -> None:
    login(client, "cora@example.org")
    header = "external_id,kind,starts_at,location,appointment_id\n"
    response = upload(client, header + "NOBODY,court,2026-03-20T09:30,,\n", kind="appointments")
    assert response.status_code == 422
    assert "line 2: external_id: no participant &#39;NOBODY&#39;" in response.get_data(as_text=True)
    assert upload(client, GOOD, kind="spreadsheet").status_code == 422


@pytest.mark.parametrize("token", ["%00abc", "x" * 65, "a%20b", "..%2F..%2Fetc"])
def test_an_odd_token_is_answered_as_gone_never_a_500(
    client: FlaskClient, staff: None, token: str
) -> None:
    login(client, "cora@example.org")
    assert client.get(f"/imports/{token}").status_code in (404, 410)
