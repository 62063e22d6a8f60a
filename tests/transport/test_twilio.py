"""The Twilio transport through the real SDK, faked at its HTTP layer (twilio.http.HttpClient)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError, ProtocolError

from bot.transport.base import SendRequest, TransportError
from bot.transport.twilio import TwilioTransport

SID = "AC" + "0" * 32
SERVICE = "MG" + "1" * 32
CREATED = {"sid": "SM" + "a" * 32, "status": "queued"}


class FakeHttp(HttpClient):  # type: ignore[misc]
    """Answers each request with the next scripted response (or raises it)."""

    def __init__(self, *answers: Response | Exception | Callable[[], Response]) -> None:
        super().__init__(logger=None, is_async=False)
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.last_response: Response | None = None

    def request(
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.requests.append({"method": method, "url": url, "data": dict(data or {})})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        self.last_response = answer
        return answer


def ok() -> Response:
    return Response(201, json.dumps(CREATED))


def error(status: int, code: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status, json.dumps({"code": code, "message": "no", "status": status}), headers or {}
    )


def transport(http: FakeHttp, **senders: str | None) -> TwilioTransport:
    values: dict[str, str | None] = {
        "from_number": "+15550100000",
        "messaging_service_sid": None,
        "whatsapp_from": None,
    }
    values.update(senders)
    return TwilioTransport(Client(SID, "token", http_client=http), **values)  # type: ignore[arg-type]


REQUEST = SendRequest(
    to="+13125550100",
    body="Hi",
    channel="sms",
    idempotency_key="k",
    status_callback="https://checkin.example.org/twilio/status",
)


def test_sms_posts_to_from_body_and_status_callback() -> None:
    http = FakeHttp(ok())
    result = transport(http).send(REQUEST)
    assert result.provider_sid == CREATED["sid"] and result.status == "queued"
    sent = http.requests[0]
    assert sent["url"] == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
    assert sent["data"] == {
        "To": "+13125550100",
        "From": "+15550100000",
        "Body": "Hi",
        "StatusCallback": "https://checkin.example.org/twilio/status",
    }


def test_messaging_service_sid_is_used_instead_of_from() -> None:
    http = FakeHttp(ok())
    transport(http, messaging_service_sid=SERVICE).send(REQUEST)
    assert http.requests[0]["data"]["MessagingServiceSid"] == SERVICE
    assert "From" not in http.requests[0]["data"]


def test_whatsapp_uses_whatsapp_addresses_on_both_ends() -> None:
    http = FakeHttp(ok())
    request = SendRequest(to="+13125550100", body="Hi", channel="whatsapp", idempotency_key="k")
    transport(http, whatsapp_from="whatsapp:+15550100001").send(request)
    assert http.requests[0]["data"]["To"] == "whatsapp:+13125550100"
    assert http.requests[0]["data"]["From"] == "whatsapp:+15550100001"


@pytest.mark.parametrize("code", [21610, 21211, 21614])
def test_permanent_errors_are_permanent(code: int) -> None:
    with pytest.raises(TransportError) as caught:
        transport(FakeHttp(error(400, code))).send(REQUEST)
    assert caught.value.permanent and caught.value.code == code and not caught.value.request_sent
    assert not caught.value.account


@pytest.mark.parametrize(
    ("status", "code", "halt"),
    [(401, 20003, True), (403, 20005, True), (404, 20404, True), (400, 21408, False)],
)
def test_errors_about_the_account_are_neither_permanent_nor_the_messages_fault(
    status: int, code: int, halt: bool
) -> None:
    with pytest.raises(TransportError) as caught:
        transport(FakeHttp(error(status, code))).send(REQUEST)
    error_ = caught.value
    assert error_.account and error_.halt is halt and error_.code == code
    assert not error_.permanent and not error_.request_sent


def test_too_many_requests_is_retryable_with_retry_after() -> None:
    with pytest.raises(TransportError) as caught:
        transport(FakeHttp(error(429, 20429, {"Retry-After": "7"}))).send(REQUEST)
    assert not caught.value.permanent and caught.value.retry_after == 7.0
    assert not caught.value.request_sent


def test_server_error_is_retryable() -> None:
    with pytest.raises(TransportError) as caught:
        transport(FakeHttp(error(503, 20503))).send(REQUEST)
    assert not caught.value.permanent and not caught.value.request_sent


def test_connection_refused_before_sending_is_a_safe_retry() -> None:
    refused = requests.ConnectionError(NewConnectionError(None, "refused"))
    with pytest.raises(TransportError) as caught:
        transport(FakeHttp(refused)).send(REQUEST)
    assert not caught.value.permanent and not caught.value.request_sent


def test_read_timeout_after_sending_is_unknown() -> None:
    with pytest.raises(TransportError) as caught:
        transport(FakeHttp(requests.ReadTimeout("read timed out"))).send(REQUEST)
    assert caught.value.request_sent


def test_connection_reset_after_sending_is_unknown() -> None:
    reset = requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))
    with pytest.raises(TransportError) as caught:
        transport(FakeHttp(reset)).send(REQUEST)
    assert caught.value.request_sent


def test_from_config_times_out_after_ten_seconds_and_rebases_the_url() -> None:
    from bot.config import Config

    config = Config(
        twilio_account_sid=SID,
        twilio_auth_token="t",
        twilio_from_number="+15550100000",
        twilio_api_base="http://127.0.0.1:4019",
    )
    t = TwilioTransport.from_config(config)
    assert t.client.http_client.timeout == 10
    assert t.client.http_client.api_base == "http://127.0.0.1:4019"
