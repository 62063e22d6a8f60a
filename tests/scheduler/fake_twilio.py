"""A local fake of Twilio's Messages endpoint at the HTTP level: records every create.

Used by the tests and by bench/send_rate.py, which times the sender against it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Arrival:
    at: float  # time.time() when the request arrived
    path: str
    user_agent: str
    form: dict[str, str]

    @property
    def from_sdk(self) -> bool:
        """Made by the official SDK against the Messages resource."""
        return (
            self.user_agent.startswith("twilio-python/")
            and self.path.startswith("/2010-04-01/Accounts/AC")
            and self.path.endswith("/Messages.json")
        )


class FakeTwilio:
    def __init__(self, port: int = 0) -> None:
        # Port 0: the OS picks a free port, so parallel test runs never collide.
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        # To address -> the Twilio error code its creates are refused with (HTTP 400).
        self.refuse: dict[str, int] = {}
        # (HTTP status, Twilio error code) to answer every create with, as Twilio does (e.g.
        # (401, 20003) for a wrong auth token); None: accept. Refused creates are counted in
        # `refused`, not recorded as arrivals.
        self.failure: tuple[int, int] | None = None
        self.refused = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The handler writes the headers and the body in two send() calls; with Nagle on,
            # the body waits for the client's delayed ACK of the headers (40 ms on Linux), so
            # every request on a kept-alive connection took ~43 ms and the fake, not the
            # sender, capped a serial worker at ~23/s. Twilio's servers do not add that stall.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                at = time.time()
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if fake.failure is not None:
                    self._refuse(*fake.failure)
                    return
                arrival = Arrival(at, self.path, self.headers.get("User-Agent", ""), form)
                with fake.lock:
                    fake.arrivals.append(arrival)
                    code = fake.refuse.get(form.get("To", ""))
                answer: dict[str, object] = (
                    {"code": code, "message": "refused", "status": 400}
                    if code is not None
                    else {"sid": f"SM{uuid.uuid4().hex}", "status": "queued"}
                )
                body = json.dumps(answer).encode()
                self.send_response(400 if code is not None else 201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _refuse(self, status: int, code: int) -> None:
                with fake.lock:
                    fake.refused += 1
                body = json.dumps(
                    {
                        "code": code,
                        "message": "refused by the fake",
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status,
                    }
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeTwilio:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def received(self) -> list[dict[str, str]]:
        """The form of every create, in arrival order."""
        with self.lock:
            return [arrival.form for arrival in self.arrivals]

    def to_addresses(self) -> list[str]:
        return [form["To"] for form in self.received]
