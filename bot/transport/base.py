"""The transport interface every sender codes against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SendRequest:
    # E.164 for SMS, "whatsapp:+E164" for WhatsApp.
    to: str
    body: str
    channel: str
    # Our outbox key, for logs and for transports that can use it; Twilio cannot.
    idempotency_key: str
    status_callback: str | None = None
    # WhatsApp outside the 24-hour window: an approved template (Twilio's ContentSid) and its
    # variables (ContentVariables, a JSON object); `body` is then not sent.
    content_sid: str | None = None
    content_variables: str | None = None


@dataclass(frozen=True)
class SendResult:
    provider_sid: str
    # The provider's first status, usually "queued" or "accepted".
    status: str


class TransportError(Exception):
    """A send that did not succeed.

    `permanent`: retrying cannot help (opted out at the carrier, invalid number ...).
    `request_sent`: the request may have reached the provider (a timeout after sending), so the
    outcome is unknown and a retry could send the text twice.
    `account`: the provider refused because of the account, not the message (authentication,
    a suspended account, a region it may not send to): the message is not at fault and is kept
    for later (bot.services.outbox.account_errors). `halt`: nothing else can be sent either
    (authentication, suspension): the send pass stops.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: int | None = None,
        request_sent: bool = False,
        retry_after: float | None = None,
        account: bool = False,
        halt: bool = False,
    ) -> None:
        super().__init__(message)
        self.account = account
        self.halt = halt
        self.permanent = permanent
        self.code = code
        self.request_sent = request_sent
        self.retry_after = retry_after


class Transport(Protocol):
    name: str

    def send(self, request: SendRequest) -> SendResult:
        """Send one message or raise TransportError."""
        ...
