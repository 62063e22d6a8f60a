"""The simulated transport: what it records and the SIDs it mints."""

from __future__ import annotations

import os
import re

import pytest

from bot.transport.base import SendRequest, TransportError
from bot.transport.simulated import SimulatedTransport

TWILIO_MESSAGE_SID = re.compile(r"^SM[0-9a-f]{32}$")


def _request(to: str = "+15555550101") -> SendRequest:
    return SendRequest(to=to, body="Hi", channel="sms", idempotency_key=f"k:{to}")


def test_sids_have_twilio_message_sid_shape() -> None:
    result = SimulatedTransport().send(_request())
    assert TWILIO_MESSAGE_SID.match(result.provider_sid), result.provider_sid


def test_sids_never_repeat_within_one_transport() -> None:
    transport = SimulatedTransport()
    sids = {transport.send(_request()).provider_sid for _ in range(1000)}
    assert len(sids) == 1000


def test_two_transports_never_mint_the_same_sid() -> None:
    # The web app and the worker each have one: provider_sid is unique in the outbox.
    first, second = SimulatedTransport(), SimulatedTransport()
    sids = [t.send(_request()).provider_sid for t in (first, second) for _ in range(50)]
    assert len(set(sids)) == 100


def test_a_forked_process_never_mints_the_parents_sids() -> None:
    # gunicorn --preload forks workers after the app (and its transport) exist.
    transport = SimulatedTransport()
    transport.send(_request())  # the parent has minted before the fork
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits
        try:
            os.write(
                write, " ".join(transport.send(_request()).provider_sid for _ in range(3)).encode()
            )
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        in_child = pipe.read().split()
    os.waitpid(child, 0)
    in_parent = [transport.send(_request()).provider_sid for _ in range(3)]
    assert len(in_child) == 3
    assert not set(in_child) & set(in_parent)


def test_records_what_was_sent_and_fails_like_a_carrier() -> None:
    transport = SimulatedTransport(failing={"+15555550199": 21610})
    transport.send(_request("+15555550101"))
    with pytest.raises(TransportError) as raised:
        transport.send(_request("+15555550199"))
    assert raised.value.code == 21610 and raised.value.permanent
    assert [m.to for m in transport.sent] == ["+15555550101"]
    assert transport.messages_to("+15555550101")[0].body == "Hi"
