"""The Twilio transport: the official SDK, its HTTP layer pointed at TWILIO_API_BASE.

Pointing the SDK's own HTTP client at another base URL (an emulator, the OpenAPI mock in
tests, a regional edge) keeps every request the SDK builds exactly as it would be in
production; only the host changes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from bot.config import DEFAULT_TWILIO_API_BASE, Config

from .base import SendRequest, SendResult, TransportError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
# Twilio error codes that no retry can fix (DESIGN.md: not retried).
PERMANENT_CODES = frozenset({21211, 21610, 21612, 21614, 21606, 21608, 21617, 63016})
RETRYABLE_CODES = frozenset({20429, 20500, 20503})
# Errors about the account, not the message (issue 17.4): nothing can be sent until someone
# fixes the account: 20003 authentication failed (HTTP 401: a wrong or rotated auth token),
# 20005 account not active (suspended or closed), 20404 on the Messages path of an account
# (the account does not exist).
ACCOUNT_HALT_CODES = frozenset({20003, 20005, 20404})
# 21408: the account may not send to the recipient's region (geo permissions): an account
# setting, but only texts to that region are refused, so the others still go.
ACCOUNT_CODES = ACCOUNT_HALT_CODES | {21408}


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """TwilioHttpClient that sends `https://api.twilio.com/...` to another base URL.

    It keeps the last response per thread so the transport can read `Retry-After` on a 429.
    `max_retries` stays unset: requests' default adapter never retries a POST it has sent.
    """

    def __init__(self, api_base: str, timeout: float = TIMEOUT_SECONDS) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self._local = threading.local()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self.api_base != DEFAULT_TWILIO_API_BASE and url.startswith(DEFAULT_TWILIO_API_BASE):
            url = self.api_base + url[len(DEFAULT_TWILIO_API_BASE) :]
        self._local.response = None
        response: Response = super().request(method, url, *args, **kwargs)
        self._local.response = response
        return response

    @property
    def last_response(self) -> Response | None:
        return getattr(self._local, "response", None)


class TwilioTransport:
    name = "twilio"

    def __init__(
        self,
        client: Client,
        *,
        from_number: str | None,
        messaging_service_sid: str | None,
        whatsapp_from: str | None,
    ) -> None:
        self.client = client
        # The SDK loads its REST modules on first use (~100 ms): do it now, not inside the
        # first paced send, which would then leave late and bunch with the next one.
        _ = client.messages
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.whatsapp_from = whatsapp_from

    @classmethod
    def from_config(cls, config: Config) -> TwilioTransport:
        client = Client(
            config.twilio_account_sid,
            config.twilio_auth_token,
            http_client=RebasedHttpClient(config.twilio_api_base),
        )
        return cls(
            client,
            from_number=config.twilio_from_number,
            messaging_service_sid=config.twilio_messaging_service_sid,
            whatsapp_from=config.twilio_whatsapp_from,
        )

    def _sender(self, channel: str) -> dict[str, str]:
        """A Messaging Service when configured (Twilio picks the number, handles STOP lists and
        the WhatsApp sender in the service), otherwise the From number."""
        if channel == "whatsapp":
            if self.whatsapp_from:
                return {"from_": _whatsapp(self.whatsapp_from)}
            if self.messaging_service_sid:
                return {"messaging_service_sid": self.messaging_service_sid}
            raise TransportError("TWILIO_WHATSAPP_FROM is not set", permanent=True)
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        if self.from_number:
            return {"from_": self.from_number}
        raise TransportError(
            "no TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID", permanent=True
        )

    def send(self, request: SendRequest) -> SendResult:
        to = _whatsapp(request.to) if request.channel == "whatsapp" else request.to
        params: dict[str, Any] = {"to": to, **self._sender(request.channel)}
        if request.content_sid:
            params["content_sid"] = request.content_sid
            if request.content_variables:
                params["content_variables"] = request.content_variables
        else:
            params["body"] = request.body
        if request.status_callback:
            params["status_callback"] = request.status_callback
        try:
            message = self.client.messages.create(**params)
        except TwilioRestException as exc:
            raise _classify_rest_error(exc, self._retry_after()) from exc
        except requests.ConnectTimeout as exc:
            # No connection was made: the request did not leave, a retry is safe.
            raise TransportError("connect timeout", permanent=False) from exc
        except requests.Timeout as exc:
            raise _unknown_outcome(exc) from exc
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise TransportError(
                    f"connection failed: {type(exc).__name__}", permanent=False
                ) from exc
            # Reset or closed after the request was written: Twilio may have accepted it.
            raise _unknown_outcome(exc) from exc
        except requests.RequestException as exc:
            raise _unknown_outcome(exc) from exc
        return SendResult(provider_sid=str(message.sid), status=str(message.status or "queued"))

    def _retry_after(self) -> float | None:
        response = getattr(self.client.http_client, "last_response", None)
        headers = getattr(response, "headers", None) or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


def _whatsapp(address: str) -> str:
    return address if address.startswith("whatsapp:") else f"whatsapp:{address}"


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the failure happened while connecting (refused, DNS), before any byte of the
    request was sent. urllib3 reports those as NewConnectionError (NameResolutionError is one)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            return True
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return False


def _unknown_outcome(exc: Exception) -> TransportError:
    # The request left and no answer came back: Twilio may have accepted it. Twilio has no
    # idempotency key on message create, so a retry could send the text twice.
    return TransportError(
        f"no answer after sending: {type(exc).__name__}", permanent=False, request_sent=True
    )


def _classify_rest_error(exc: TwilioRestException, retry_after: float | None) -> TransportError:
    code = int(exc.code) if exc.code is not None else None
    status = int(exc.status)
    if status == 401 or code in ACCOUNT_CODES:
        return TransportError(
            f"twilio account error {code} (HTTP {status})",
            permanent=False,
            code=code,
            account=True,
            halt=status == 401 or code in ACCOUNT_HALT_CODES,
        )
    retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
    permanent = not retryable and (code in PERMANENT_CODES or 400 <= status < 500)
    return TransportError(
        f"twilio error {code} (HTTP {status})",
        permanent=permanent,
        code=code,
        retry_after=retry_after if retryable else None,
    )
