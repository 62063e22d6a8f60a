"""`checkin doctor`: one line per check, with what to fix; Twilio faked at the HTTP layer and
checked against Twilio's OpenAPI mock."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session

from bot.config import Config, parse_config
from bot.services.doctor import Check, check_configuration, check_database, check_twilio
from bot.services.heartbeat import record_pass
from tests.transport.test_twilio_contract import twilio_mock  # noqa: F401  (a fixture)

SID = "AC" + "0" * 32
NUMBER = "+15550100000"
PUBLIC = "https://checkin.example.org"


class FakeTwilioApi:
    """Answers the two GETs doctor makes, as Twilio's REST API would."""

    def __init__(self) -> None:
        self.account: dict[str, Any] = {"sid": SID, "friendly_name": "Reentry", "status": "active"}
        self.account_status = 200
        self.numbers: list[dict[str, Any]] = [
            {
                "sid": "PN" + "1" * 32,
                "phone_number": NUMBER,
                "sms_url": PUBLIC + "/twilio/inbound",
                "sms_method": "POST",
                "sms_application_sid": None,
            }
        ]
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append(self.path)
                path = urlsplit(self.path).path
                if path == f"/2010-04-01/Accounts/{SID}.json":
                    status, body = fake.account_status, fake.account
                    if status != 200:
                        body = {"code": 20003, "message": "Authenticate", "status": status}
                elif path == f"/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json":
                    wanted = parse_qs(urlsplit(self.path).query).get("PhoneNumber", [""])[0]
                    found = [n for n in fake.numbers if n["phone_number"] == wanted]
                    status = 200
                    body = {
                        "incoming_phone_numbers": found,
                        "page": 0,
                        "page_size": 20,
                        "next_page_uri": None,
                    }
                else:
                    status, body = 404, {"code": 20404, "message": "not found", "status": 404}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake_api() -> Iterator[FakeTwilioApi]:
    fake = FakeTwilioApi()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _twilio_config(api_base: str, **extra: str) -> Config:
    return parse_config(
        {
            "TWILIO_ACCOUNT_SID": SID,
            "TWILIO_AUTH_TOKEN": "token",
            "TWILIO_FROM_NUMBER": NUMBER,
            "TWILIO_API_BASE": api_base,
            "PUBLIC_BASE_URL": PUBLIC,
            "SECRET_KEY": "k" * 32,
            **extra,
        }
    )


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_number_pointed_at_checkin_passes(fake_api: FakeTwilioApi) -> None:
    checks = _by_name(check_twilio(_twilio_config(fake_api.url)))
    assert checks["Twilio account"].status == "ok"
    assert checks["Twilio webhook"].line() == (
        f"OK   Twilio webhook: {NUMBER} -> {PUBLIC}/twilio/inbound"
    )
    assert any("PhoneNumber=%2B15550100000" in r for r in fake_api.requests)


def test_a_webhook_pointing_elsewhere_fails_and_says_where_to_set_it(
    fake_api: FakeTwilioApi,
) -> None:
    fake_api.numbers[0]["sms_url"] = "https://demo.twilio.com/welcome/sms/reply"
    check = _by_name(check_twilio(_twilio_config(fake_api.url)))["Twilio webhook"]
    assert check.status == "fail"
    assert "demo.twilio.com" in check.message
    assert f"Webhook {PUBLIC}/twilio/inbound (HTTP POST)" in check.line()


def test_a_number_the_account_does_not_own_fails(fake_api: FakeTwilioApi) -> None:
    fake_api.numbers = []
    check = _by_name(check_twilio(_twilio_config(fake_api.url)))["Twilio webhook"]
    assert check.status == "fail" and "is not a number of this account" in check.message


def test_a_wrong_auth_token_fails_naming_the_fix(fake_api: FakeTwilioApi) -> None:
    fake_api.account_status = 401
    checks = _by_name(check_twilio(_twilio_config(fake_api.url)))
    assert checks["Twilio account"].status == "fail"
    assert "401 20003" in checks["Twilio account"].message
    assert "Auth Token" in checks["Twilio account"].fix
    assert checks["Twilio webhook"].status == "skip"


def test_a_suspended_account_fails(fake_api: FakeTwilioApi) -> None:
    fake_api.account["status"] = "suspended"
    check = _by_name(check_twilio(_twilio_config(fake_api.url)))["Twilio account"]
    assert check.status == "fail" and "suspended" in check.message


def test_an_unreachable_twilio_api_fails_without_hanging() -> None:
    checks = _by_name(check_twilio(_twilio_config("http://127.0.0.1:9")))
    assert checks["Twilio account"].status == "fail"
    assert "TWILIO_API_BASE" in checks["Twilio account"].fix


def test_doctor_requests_pass_twilio_openapi_validation(twilio_mock: str) -> None:  # noqa: F811
    """The mock answers with the spec's example records (not our number), so the webhook line
    fails; what matters is that both requests were accepted as Twilio's contract says."""
    checks = _by_name(check_twilio(_twilio_config(twilio_mock)))
    assert checks["Twilio account"].status == "ok", checks["Twilio account"].line()
    webhook = checks["Twilio webhook"]
    assert "cannot list numbers" not in webhook.message, webhook.line()


def test_configuration_lines_name_what_to_fix() -> None:
    checks = _by_name(
        check_configuration(
            parse_config({"SECRET_KEY": "short", "PUBLIC_BASE_URL": "http://x.org"})
        )
    )
    assert checks["SECRET_KEY"].status == "fail"
    assert checks["PUBLIC_BASE_URL"].status == "fail" and "https" in checks["PUBLIC_BASE_URL"].fix
    assert checks["Twilio settings"].status == "warn"


def test_database_migrations_and_a_fresh_worker_pass(
    config: Config, session: Session, now: datetime
) -> None:
    record_pass(session, now - timedelta(seconds=40), "worker-1")
    session.commit()
    checks = _by_name(check_database(config, now))
    assert [checks[n].status for n in ("database", "migrations", "worker")] == ["ok"] * 3
    assert checks["worker"].message == "last pass 40 s ago"


def test_a_stale_or_missing_worker_fails(config: Config, session: Session, now: datetime) -> None:
    assert _by_name(check_database(config, now))["worker"].status == "fail"
    record_pass(session, now - timedelta(minutes=12), "worker-1")
    session.commit()
    worker = _by_name(check_database(config, now))["worker"]
    assert worker.status == "fail" and "12 min ago" in worker.message
    assert "checkin-worker" in worker.fix


def test_an_unreachable_database_fails_and_skips_what_needs_it(tmp_path: Any) -> None:
    config = Config(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none")
    checks = _by_name(check_database(config, datetime.now().astimezone()))
    assert checks["database"].status == "fail" and "DATABASE_URL" in checks["database"].fix
    assert checks["migrations"].status == "skip"
