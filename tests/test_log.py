from __future__ import annotations

import json
import logging

import pytest

from bot.log import log_event, mask_phone

log = logging.getLogger("bot.test_log")


def test_an_event_is_one_json_line_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.test_log"):
        log_event(log, "inbound.processed", sender=mask_phone("+13125550123"), intent="none")
    (record,) = caplog.records
    assert json.loads(record.getMessage()) == {
        "event": "inbound.processed",
        "intent": "none",
        "sender": "+1******0123",
    }


def test_an_event_below_the_level_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.test_log"):
        log_event(log, "inbound.processed", intent="none")
        log_event(log, "webhook.forbidden", level=logging.WARNING, reason="bad signature")
    assert [json.loads(r.getMessage())["event"] for r in caplog.records] == ["webhook.forbidden"]


def test_an_event_below_the_level_does_not_even_encode_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The webhook logs an INFO event per text; at WARNING that must cost nothing.
    encoded: list[str] = []

    class Probe:
        def __str__(self) -> str:
            encoded.append("str")
            return "probe"

    with caplog.at_level(logging.WARNING, logger="bot.test_log"):
        log_event(log, "inbound.processed", probe=Probe())
    assert encoded == []
