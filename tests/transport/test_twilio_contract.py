"""Contract check: the real SDK, through our transport, against Twilio's OpenAPI mock (Prism)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bot.config import Config
from bot.transport.base import SendRequest
from bot.transport.twilio import TwilioTransport

# The shared Twilio OpenAPI mock lives beside the checkout (../shared/twilio/mock), or beside
# a directory above it (a git worktree kept under the checkout's parent).
MOCK = next(
    (
        parent / "shared" / "twilio" / "mock"
        for parent in Path(__file__).resolve().parents[2:]
        if (parent / "shared" / "twilio" / "mock").exists()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "twilio" / "mock",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def twilio_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (MOCK.exists() and shutil.which("node") and shutil.which("npm")):
        reason = (
            "Twilio contract test needs ../shared/twilio/mock beside the checkout, Node.js and npm"
        )
        if os.environ.get("CHECKIN_REQUIRE_TWILIO_MOCK") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("twilio") / "prism.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(MOCK), str(port), "-v", "warn"], stdout=log, stderr=subprocess.STDOUT
        )
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"Twilio mock did not start, see {log_path}")
                time.sleep(0.2)
        yield url
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("senders", "channel"),
    [
        ({"TWILIO_FROM_NUMBER": "+15550100000"}, "sms"),
        ({"TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32}, "sms"),
        (
            {"TWILIO_FROM_NUMBER": "+15550100000", "TWILIO_WHATSAPP_FROM": "+15550100001"},
            "whatsapp",
        ),
    ],
)
def test_outbound_message_passes_twilio_openapi_validation(
    twilio_mock: str, senders: dict[str, str], channel: str
) -> None:
    from bot.config import parse_config

    config: Config = parse_config(
        {
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "TWILIO_API_BASE": twilio_mock,
            **senders,
        }
    )
    transport = TwilioTransport.from_config(config)
    result = transport.send(
        SendRequest(
            to="+13125550100",
            body="Hi Sam, checking in.",
            channel=channel,
            idempotency_key="contract",
            status_callback="https://checkin.example.org/twilio/status",
        )
    )
    assert result.provider_sid.startswith("SM")
    sent = transport.client.http_client._test_only_last_request
    assert sent.url.startswith(twilio_mock + "/2010-04-01/Accounts/AC")
    assert sent.data["StatusCallback"] == "https://checkin.example.org/twilio/status"


def test_whatsapp_template_send_passes_twilio_openapi_validation(twilio_mock: str) -> None:
    """Outside the 24-hour window: ContentSid and ContentVariables, no Body."""
    from bot.config import parse_config

    config: Config = parse_config(
        {
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "TWILIO_API_BASE": twilio_mock,
            "TWILIO_FROM_NUMBER": "+15550100000",
            "TWILIO_WHATSAPP_FROM": "whatsapp:+15550100001",
        }
    )
    transport = TwilioTransport.from_config(config)
    result = transport.send(
        SendRequest(
            to="+13125550100",
            body="Hola Ana, ¿cómo estás?",
            channel="whatsapp",
            idempotency_key="contract-template",
            status_callback="https://checkin.example.org/twilio/status",
            content_sid="HX" + "ab" * 16,
            content_variables='{"1":"Ana","2":"Homecoming Peers"}',
        )
    )
    assert result.provider_sid.startswith("SM")
    sent = transport.client.http_client._test_only_last_request
    assert sent.data["ContentSid"] == "HX" + "ab" * 16
    assert sent.data["ContentVariables"] == '{"1":"Ana","2":"Homecoming Peers"}'
    assert sent.data["To"] == "whatsapp:+13125550100"
    assert sent.data["From"] == "whatsapp:+15550100001"
    assert "Body" not in sent.data
