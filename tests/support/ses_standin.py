"""A local stand-in for Amazon SES v2 (`GetAccount`, `SendEmail`): a real HTTP server
speaking SES's REST-JSON protocol, so boto3's own `sesv2` client talks to it over HTTP
(`AWS_ENDPOINT_URL_SESV2=standin.url`).

moto's SES v2 has no GetAccount and keeps neither EmailTags nor headers, which is what
the transport's tests must see. This stand-in answers as SES does:

- `GET /v2/email/account`: SendQuota (MaxSendRate), ProductionAccessEnabled, SendingEnabled;
- `POST /v2/email/outbound-emails`: 200 `{"MessageId": ...}`; errors as SES sends them,
  status plus `x-amzn-ErrorType` and `{"message": ...}`: 429 TooManyRequestsException when
  more than MaxSendRate calls arrive within a second (as SES throttles), 400
  MessageRejected for a scripted recipient, 400 SendingPausedException when paused,
  404 NotFoundException for an unknown configuration set, 400 BadRequestException for a
  request SES would refuse (no configuration set, tags that break SES's rules).

`messages()` lists what was accepted (recipient, subject, tags, headers, parts).
"""

from __future__ import annotations

import collections
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT_PATH = "/v2/email/account"
SEND_PATH = "/v2/email/outbound-emails"
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass
class SesMessage:
    message_id: str
    to_email: str
    to_header: str
    from_header: str
    raw_subject: str
    tags: dict[str, str]
    headers: dict[str, str]
    text: str | None
    html: str | None
    configuration_set: str
    reply_to: list[str] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: SesStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass

    def do_GET(self) -> None:
        self.server.standin.handle(self, "GET")

    def do_POST(self) -> None:
        self.server.standin.handle(self, "POST")


class SesStandIn:
    def __init__(
        self,
        *,
        max_send_rate: float = 200.0,
        production: bool = True,
        sending_enabled: bool = True,
        configuration_sets: tuple[str, ...] = ("nurture-events",),
        latency: float = 0.0,
        enforce_rate: bool = True,
    ) -> None:
        self.max_send_rate = max_send_rate
        self.production = production
        self.sending_enabled = sending_enabled
        self.configuration_sets = set(configuration_sets)
        self.latency = latency
        self.enforce_rate = enforce_rate
        self.enforced_rate: float | None = None  # what SES holds the line at, if not max_send_rate
        self.rejected_recipients: set[str] = set()
        self.pause_after: int | None = None  # SendingPausedException once this many were accepted
        self.drop_connection_for: set[str] = set()  # recipients whose call is cut after it arrives
        self._lock = threading.Lock()
        self._messages: list[SesMessage] = []
        self._recent: collections.deque[float] = collections.deque()
        self.request_count = 0
        self.throttled = 0
        self.account_reads = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> SesStandIn:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SesStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def messages(self) -> list[SesMessage]:
        with self._lock:
            return list(self._messages)

    # ------------------------------------------------------------ answers

    def _answer(self, handler: _Handler, status: int, body: dict[str, Any], error: str | None = None) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-amzn-RequestId", secrets.token_hex(8))
        if error:
            handler.send_header("x-amzn-ErrorType", error)
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: _Handler, status: int, code: str, message: str) -> None:
        self._answer(handler, status, {"message": message}, error=code)

    def handle(self, handler: _Handler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if "Authorization" not in handler.headers:
            self._error(handler, 403, "UnrecognizedClientException", "missing signature")
            return
        path = handler.path.split("?")[0]
        if method == "GET" and path == ACCOUNT_PATH:
            with self._lock:
                self.account_reads += 1
            self._answer(
                handler,
                200,
                {
                    "SendQuota": {
                        "Max24HourSend": 50000.0,
                        "MaxSendRate": self.max_send_rate,
                        "SentLast24Hours": 0.0,
                    },
                    "ProductionAccessEnabled": self.production,
                    "SendingEnabled": self.sending_enabled,
                    "DedicatedIpAutoWarmupEnabled": False,
                    "EnforcementStatus": "HEALTHY",
                },
            )
            return
        if method == "POST" and path == SEND_PATH:
            self._send(handler, raw)
            return
        self._error(handler, 404, "NotFoundException", f"no route {method} {path}")

    def _send(self, handler: _Handler, raw: bytes) -> None:
        if self.latency:
            time.sleep(self.latency)
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(handler, 400, "BadRequestException", "not JSON")
            return
        now = time.monotonic()
        with self._lock:
            self.request_count += 1
            if self.enforce_rate:
                while self._recent and self._recent[0] < now - 1.0:
                    self._recent.popleft()
                limit = self.max_send_rate if self.enforced_rate is None else self.enforced_rate
                if len(self._recent) >= limit:
                    self.throttled += 1
                    throttled = True
                else:
                    self._recent.append(now)
                    throttled = False
            else:
                throttled = False
        if throttled:
            self._error(handler, 429, "TooManyRequestsException", "Maximum sending rate exceeded.")
            return
        config_set = body.get("ConfigurationSetName")
        if not config_set:
            self._error(handler, 400, "BadRequestException", "ConfigurationSetName is required here")
            return
        if config_set not in self.configuration_sets:
            self._error(
                handler, 404, "NotFoundException", f"Configuration set <{config_set}> does not exist."
            )
            return
        tags = body.get("EmailTags") or []
        if any(
            not _TAG.fullmatch(str(t.get("Name", ""))) or not _TAG.fullmatch(str(t.get("Value", "")))
            for t in tags
        ):
            self._error(handler, 400, "BadRequestException", "Invalid tag name or value")
            return
        to_header = (body.get("Destination") or {}).get("ToAddresses", [""])[0]
        to_email = parseaddr(to_header)[1]
        simple = (body.get("Content") or {}).get("Simple") or {}
        with self._lock:
            if not self.sending_enabled or (
                self.pause_after is not None and len(self._messages) >= self.pause_after
            ):
                paused = True
            else:
                paused = False
        if paused:
            self._error(handler, 400, "SendingPausedException", "Sending is paused for this account.")
            return
        if to_email in self.rejected_recipients:
            self._error(
                handler, 400, "MessageRejected", "Email address is on the account-level suppression list."
            )
            return
        if to_email in self.drop_connection_for:
            with self._lock:
                self._messages.append(self._message(body, to_email, to_header, simple))
            handler.close_connection = True
            handler.connection.shutdown(2)  # the request arrived; no answer goes back
            return
        message = self._message(body, to_email, to_header, simple)
        with self._lock:
            self._messages.append(message)
        self._answer(handler, 200, {"MessageId": message.message_id})

    @staticmethod
    def _message(body: dict[str, Any], to_email: str, to_header: str, simple: dict[str, Any]) -> SesMessage:
        parts = simple.get("Body") or {}
        return SesMessage(
            message_id=f"0100{secrets.token_hex(12)}-{secrets.token_hex(4)}-000000",
            to_email=to_email,
            to_header=to_header,
            from_header=str(body.get("FromEmailAddress", "")),
            raw_subject=str((simple.get("Subject") or {}).get("Data", "")),
            tags={str(t["Name"]): str(t["Value"]) for t in body.get("EmailTags") or []},
            headers={str(h["Name"]): str(h["Value"]) for h in simple.get("Headers") or []},
            text=(parts.get("Text") or {}).get("Data"),
            html=(parts.get("Html") or {}).get("Data"),
            configuration_set=str(body.get("ConfigurationSetName")),
            reply_to=list(body.get("ReplyToAddresses") or []),
        )
