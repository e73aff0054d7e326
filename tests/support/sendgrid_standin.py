"""A local stand-in for SendGrid's v3 `POST /v3/mail/send`: a real HTTP server.

The test suite and the benchmark point the real `sendgrid` library at it
(`SendGridAPIClient(api_key, host=standin.url)`), so the whole path - JSON body,
urllib, status codes, headers - is exercised without the internet.

It validates a request the way SendGrid does (limits, duplicates, reserved headers,
string-only custom_args, content order, sizes) and answers like SendGrid:
202 + `X-Message-Id` (200 in sandbox mode), 400 with `{"errors": [...]}`, 401, 403,
413 (an HTML page, as SendGrid's front end sends), 429 with `X-RateLimit-*`.

In-process::

    with SendGridStandIn(api_key="SG.test") as sg:
        transport = SendGridTransport("SG.test", host=sg.url)
        ...
        sg.messages()          # one StandInMessage per delivered personalization
        sg.fail_next(status=429, reset_in=1.0)

As a separate process (for the benchmark)::

    python -m tests.support.sendgrid_standin --port 0 --latency 0.05 --api-key SG.x --count-only

prints `READY http://127.0.0.1:PORT` once listening. With `--count-only` it validates
fully but only counts, so memory stays flat; `GET /_standin/stats` returns the counts.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import math
import re
import secrets
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAIL_SEND_PATH = "/v3/mail/send"
STATS_PATH = "/_standin/stats"

MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SUBSTITUTIONS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255
MAX_ERRORS_REPORTED = 50

RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)

AUTH_INVALID_MESSAGE = "The provided authorization grant is invalid, expired, or revoked"
FORBIDDEN_MESSAGE = "access forbidden"
HELP_URL = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")

PAYLOAD_TOO_LARGE_HTML = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n"
    b"<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in accepted (202 delivered, or 200 sandboxed)."""

    body: dict[str, Any]
    message_id: str
    status: int
    sandboxed: bool
    received_at: float
    headers: Mapping[str, str]  # HTTP request headers, Authorization removed

    @property
    def delivered(self) -> bool:
        return not self.sandboxed


class StandInMessage:
    """One delivered email: a personalization of an accepted request.

    `text`, `html` and `subject` have the substitutions applied, computed on first
    access, so listing a hundred thousand messages stays cheap.
    """

    def __init__(self, request: RecordedRequest, index: int) -> None:
        body = request.body
        p = body["personalizations"][index]
        self.request = request
        self.index = index
        self.message_id = request.message_id
        to = p["to"][0]
        self.to_email: str = to["email"]
        self.to_name: str | None = to.get("name")
        self.to: list[dict[str, str]] = p["to"]
        self.cc: list[dict[str, str]] = p.get("cc") or []
        self.bcc: list[dict[str, str]] = p.get("bcc") or []
        self.raw_subject: str = p.get("subject") or body.get("subject") or ""
        self.headers: dict[str, str] = {**(body.get("headers") or {}), **(p.get("headers") or {})}
        self.substitutions: dict[str, str] = dict(p.get("substitutions") or {})
        self.custom_args: dict[str, str] = {
            **(body.get("custom_args") or {}),
            **(p.get("custom_args") or {}),
        }
        sender = body.get("from") or {}
        self.from_email: str | None = sender.get("email")
        self.from_name: str | None = sender.get("name")
        self.reply_to: str | None = (body.get("reply_to") or {}).get("email")
        self.categories: list[str] = list(body.get("categories") or [])

    def _content(self, mime: str) -> str | None:
        for block in self.request.body.get("content") or []:
            if block.get("type") == mime:
                return block.get("value")
        return None

    @cached_property
    def raw_text(self) -> str | None:
        return self._content("text/plain")

    @cached_property
    def raw_html(self) -> str | None:
        return self._content("text/html")

    @cached_property
    def subject(self) -> str:
        return substitute(self.raw_subject, self.substitutions)

    @cached_property
    def text(self) -> str | None:
        raw = self.raw_text
        return None if raw is None else substitute(raw, self.substitutions)

    @cached_property
    def html(self) -> str | None:
        raw = self.raw_html
        return None if raw is None else substitute(raw, self.substitutions)

    def __repr__(self) -> str:
        return f"<StandInMessage {self.message_id}#{self.index}>"


def substitute(content: str, substitutions: Mapping[str, str]) -> str:
    """Replace each tag by its value, in order, as SendGrid does."""
    for tag, value in substitutions.items():
        content = content.replace(tag, value)
    return content


@dataclass
class _Scripted:
    status: int | None
    hang: float
    deliver: bool
    reset_in: float | None
    message: str | None
    body: bytes | None
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- validation


def _err(message: str, field_: str | None = None, help_: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field_, "help": help_}


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_headers(headers: Any, where: str, errors: list[dict[str, Any]]) -> None:
    if headers is None:
        return
    if not isinstance(headers, dict):
        errors.append(_err(f"Invalid type. Expected: object, given: {_type_name(headers)}.", where))
        return
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            errors.append(
                _err(
                    f"The header {name!r} is reserved and cannot be set. Reserved headers: "
                    "x-sg-id, x-sg-eid, received, dkim-signature, Content-Type, "
                    "Content-Transfer-Encoding, To, From, Subject, Reply-To, CC, BCC.",
                    f"{where}.{name}",
                    f"{HELP_URL}#message.headers",
                )
            )
        if not isinstance(value, str):
            errors.append(
                _err(f"Invalid type. Expected: string, given: {_type_name(value)}.", f"{where}.{name}")
            )


def _check_string_map(value: Any, where: str, errors: list[dict[str, Any]]) -> bool:
    """custom_args / substitutions: an object whose values are all strings."""
    if value is None:
        return True
    if not isinstance(value, dict):
        errors.append(_err(f"Invalid type. Expected: object, given: {_type_name(value)}.", where))
        return False
    ok = True
    for key, item in value.items():
        if not isinstance(item, str):
            errors.append(
                _err(f"Invalid type. Expected: string, given: {_type_name(item)}.", f"{where}.{key}")
            )
            ok = False
    return ok


TRACKING_SETTINGS = {
    "click_tracking": ("enable", "enable_text"),
    "open_tracking": ("enable", "substitution_tag"),
    "subscription_tracking": ("enable", "text", "html", "substitution_tag"),
    "ganalytics": ("enable", "utm_source", "utm_medium", "utm_term", "utm_content", "utm_campaign"),
}


def _check_tracking_settings(settings: Any, errors: list[dict[str, Any]]) -> None:
    """tracking_settings: known settings only, each an object whose `enable`/`enable_text` are booleans."""
    if settings is None:
        return
    if not isinstance(settings, dict):
        errors.append(
            _err(f"Invalid type. Expected: object, given: {_type_name(settings)}.", "tracking_settings")
        )
        return
    for name, value in settings.items():
        where = f"tracking_settings.{name}"
        if name not in TRACKING_SETTINGS or not isinstance(value, dict):
            errors.append(_err(f"{where} is not a known tracking setting object.", where))
            continue
        for key, flag in value.items():
            if key not in TRACKING_SETTINGS[name]:
                errors.append(_err(f"{where}.{key} is not a known field.", f"{where}.{key}"))
            elif key.startswith("enable") and not isinstance(flag, bool):
                errors.append(
                    _err(f"Invalid type. Expected: boolean, given: {_type_name(flag)}.", f"{where}.{key}")
                )


def validate_mail_send(body: Any) -> list[dict[str, Any]]:
    """The errors SendGrid would answer 400 with; an empty list when the request is valid."""
    errors: list[dict[str, Any]] = []
    if not isinstance(body, dict):
        return [_err("The request body must be a JSON object.", None)]

    # from
    sender = body.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str) or not sender["email"]:
        errors.append(
            _err(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
                f"{HELP_URL}#message.from",
            )
        )
    elif not _EMAIL_RE.match(sender["email"]):
        errors.append(_err("The from email does not contain a valid address.", "from.email"))

    reply_to = body.get("reply_to")
    if reply_to is not None and (
        not isinstance(reply_to, dict)
        or not isinstance(reply_to.get("email"), str)
        or not _EMAIL_RE.match(reply_to["email"])
    ):
        errors.append(_err("The reply_to email does not contain a valid address.", "reply_to.email"))

    # content
    has_template = bool(body.get("template_id"))
    content = body.get("content")
    if content is None or content == []:
        if not has_template:
            errors.append(
                _err(
                    "Unless a valid template_id is provided, the content parameter is required. "
                    "There must be at least one defined content block. We typically suggest both "
                    "text/plain and text/html blocks are included, but only one block is required.",
                    "content",
                    f"{HELP_URL}#message.content",
                )
            )
    elif not isinstance(content, list):
        errors.append(_err(f"Invalid type. Expected: array, given: {_type_name(content)}.", "content"))
    else:
        types: list[str] = []
        for i, block in enumerate(content):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                errors.append(_err("Each content block must have a type.", f"content.{i}.type"))
                continue
            types.append(block["type"])
            value = block.get("value")
            if not isinstance(value, str) or not value:
                errors.append(
                    _err(
                        "The content value must be a string at least one character in length.",
                        f"content.{i}.value",
                    )
                )
        order_ok = True
        if "text/plain" in types and types.index("text/plain") != 0:
            order_ok = False
        if "text/html" in types:
            expected = 1 if "text/plain" in types else 0
            if types.index("text/html") != expected:
                order_ok = False
        if types.count("text/plain") > 1 or types.count("text/html") > 1:
            order_ok = False
        if not order_ok:
            errors.append(
                _err(
                    "If present, text/plain and text/html may only be provided in this order: "
                    "text/plain, then text/html, then any other content.",
                    "content",
                    f"{HELP_URL}#message.content",
                )
            )

    _check_tracking_settings(body.get("tracking_settings"), errors)

    # top-level headers / custom_args / categories
    _check_headers(body.get("headers"), "headers", errors)
    top_args = body.get("custom_args")
    top_args_ok = _check_string_map(top_args, "custom_args", errors)
    categories = body.get("categories")
    if categories is not None:
        if not isinstance(categories, list):
            errors.append(
                _err(f"Invalid type. Expected: array, given: {_type_name(categories)}.", "categories")
            )
        else:
            if len(categories) > MAX_CATEGORIES:
                errors.append(_err("You may not have more than 10 categories per request.", "categories"))
            if any(not isinstance(c, str) or not c or len(c) > MAX_CATEGORY_LENGTH for c in categories):
                errors.append(_err("Each category must be a string of 1 to 255 characters.", "categories"))
            elif len({c.lower() for c in categories}) != len(categories):
                errors.append(_err("The categories must be unique.", "categories"))

    # personalizations
    top_subject = body.get("subject")
    has_top_subject = isinstance(top_subject, str) and bool(top_subject)
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _err(
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
                f"{HELP_URL}#-Personalizations-Errors",
            )
        )
        return errors[:MAX_ERRORS_REPORTED]
    if len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            _err(
                "The personalizations field cannot have more than 1000 personalizations.",
                "personalizations",
                f"{HELP_URL}#-Personalizations-Errors",
            )
        )
        return errors[:MAX_ERRORS_REPORTED]

    seen: dict[str, str] = {}
    recipients = 0
    subject_missing = False
    for i, p in enumerate(personalizations):
        where = f"personalizations.{i}"
        if not isinstance(p, dict):
            errors.append(_err(f"Invalid type. Expected: object, given: {_type_name(p)}.", where))
            continue
        to = p.get("to")
        if not isinstance(to, list) or not to:
            errors.append(
                _err(
                    "The to array is required for all personalization objects, and must have at "
                    "least one email object with a valid email address.",
                    f"{where}.to",
                    f"{HELP_URL}#message.personalizations.to",
                )
            )
        for kind in ("to", "cc", "bcc"):
            people = p.get(kind)
            if people is None:
                continue
            if not isinstance(people, list):
                errors.append(
                    _err(f"Invalid type. Expected: array, given: {_type_name(people)}.", f"{where}.{kind}")
                )
                continue
            for j, person in enumerate(people):
                path = f"{where}.{kind}.{j}.email"
                email = person.get("email") if isinstance(person, dict) else None
                if not isinstance(email, str) or not _EMAIL_RE.match(email):
                    errors.append(_err("Does not contain a valid address.", path))
                    continue
                recipients += 1
                key = email.lower()
                first = seen.get(key)
                if first is not None:
                    errors.append(
                        _err(
                            "Each email address in the request must be unique (case-insensitive) "
                            f"across to, cc and bcc of every personalization; it first appeared in {first}.",
                            path,
                            f"{HELP_URL}#message.recipient.errors",
                        )
                    )
                else:
                    seen[key] = path
        subject = p.get("subject")
        if not (isinstance(subject, str) and subject) and not has_top_subject:
            subject_missing = True
        _check_headers(p.get("headers"), f"{where}.headers", errors)
        args = p.get("custom_args")
        if _check_string_map(args, f"{where}.custom_args", errors) and top_args_ok:
            merged = {**(top_args or {}), **(args or {})}
            if merged and _json_size(merged) > MAX_CUSTOM_ARGS_BYTES:
                errors.append(
                    _err(
                        "The custom_args (top-level and personalization together) "
                        "must be 10,000 bytes or fewer.",
                        f"{where}.custom_args",
                        f"{HELP_URL}#message.custom_args",
                    )
                )
        subs = p.get("substitutions")
        if (
            _check_string_map(subs, f"{where}.substitutions", errors)
            and subs
            and _json_size(subs) > MAX_SUBSTITUTIONS_BYTES
        ):
            errors.append(
                _err(
                    "The substitutions of a personalization must be 10,000 bytes or fewer.",
                    f"{where}.substitutions",
                    f"{HELP_URL}#message.personalizations.substitutions",
                )
            )
        if len(errors) >= MAX_ERRORS_REPORTED:
            break

    if recipients > MAX_RECIPIENTS:
        errors.append(
            _err(
                "The total number of recipients (to, cc and bcc) in a request must be 1000 or fewer.",
                "personalizations",
                f"{HELP_URL}#-Personalizations-Errors",
            )
        )
    if subject_missing:
        errors.append(
            _err(
                "The subject is required. You can get around this requirement if you use a template "
                "with a subject defined or if every personalization has a subject defined.",
                "subject",
                f"{HELP_URL}#message.subject",
            )
        )
    return errors[:MAX_ERRORS_REPORTED]


def _errors_body(errors: Iterable[Mapping[str, Any]]) -> bytes:
    return json.dumps({"errors": list(errors)}).encode("utf-8")


def _new_message_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    standin: SendGridStandIn

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) makes our write fail: that is expected here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SendGridStandIn/1.0"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is dropped after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler names it so
        if self.server.standin.verbose:
            sys.stderr.write("standin: " + (format % args) + "\n")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] == MAIL_SEND_PATH:
            self.server.standin._handle_mail_send(self)
        else:
            self.server.standin._drain(self)
            self.server.standin._respond(self, 404, _errors_body([_err("Not found", None)]))

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == STATS_PATH:
            self.server.standin._respond(self, 200, json.dumps(self.server.standin.stats()).encode())
        else:
            self.server.standin._respond(self, 404, _errors_body([_err("Not found", None)]))


# --------------------------------------------------------------------------- the stand-in


class SendGridStandIn:
    """A SendGrid v3 mail/send server on 127.0.0.1. Thread-safe."""

    def __init__(
        self,
        api_key: str = "SG.test",
        *,
        forbidden_key: str | None = "SG.forbidden",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        count_only: bool = False,
        max_body_bytes: int = MAX_BODY_BYTES,
        verbose: bool = False,
    ) -> None:
        self.api_key = api_key
        self.forbidden_key = forbidden_key
        self.latency = latency
        self.count_only = count_only
        self.max_body_bytes = max_body_bytes
        self.verbose = verbose
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._script: collections.deque[_Scripted] = collections.deque()
        self._reset_state()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SendGridStandIn:
        if self._server is not None:
            return self
        self._closing.clear()
        server = _Server(self._bind, _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            # shutdown() waits up to one poll interval: keep it short so tests stop fast.
            target=server.serve_forever,
            kwargs={"poll_interval": 0.005},
            name="sendgrid-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._closing.set()  # wakes hanging/latent handlers
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    close = stop

    def __enter__(self) -> SendGridStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return f"http://{self._server.server_address[0]}:{self._server.server_address[1]}"

    # ----------------------------------------------------------------- scripting

    def fail_next(
        self,
        status: int | None = None,
        *,
        hang: float = 0.0,
        deliver: bool = False,
        reset_in: float | None = 1.0,
        message: str | None = None,
        body: str | bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Script the answer to the next authorized mail/send request(s).

        - `status=429, reset_in=1.0`: 429 with X-RateLimit-Limit/Remaining/Reset, Reset being
          the Unix time `reset_in` seconds from now (`reset_in=None` leaves Reset out).
        - `status=500|502|503|504`, `status=400, message=...`: that answer, SendGrid-shaped body.
        - `body=..., content_type=...`: send exactly that body (e.g. an HTML 413 page).
        - `hang=5.0`: sleep that long first (to provoke a client read timeout); the request is
          not delivered; with no `status` the connection is then closed without an answer.
        - `deliver=True`: process the request normally (validate, record delivery) and then
          answer `status` anyway - SendGrid delivered but said 5xx.
        """
        if status is None and hang <= 0:
            raise ValueError("fail_next needs a status or a hang")
        raw = body.encode("utf-8") if isinstance(body, str) else body
        step = _Scripted(status, hang, deliver, reset_in, message, raw, content_type, dict(headers or {}))
        with self._lock:
            for _ in range(times):
                self._script.append(step)

    # ----------------------------------------------------------------- records

    def _reset_state(self) -> None:
        self._requests: list[RecordedRequest] = []
        self._rejections: list[tuple[int, list[dict[str, Any]]]] = []
        self._request_count = 0
        self._accepted = 0
        self._delivered_requests = 0
        self._sandboxed_requests = 0
        self._message_count = 0
        self._rejected = 0
        self._scripted_count = 0

    def reset(self) -> None:
        """Forget every request, counter and scripted failure; keep running."""
        with self._lock:
            self._script.clear()
            self._reset_state()

    @property
    def request_count(self) -> int:
        """Every POST /v3/mail/send that reached the stand-in, whatever the answer."""
        with self._lock:
            return self._request_count

    @property
    def requests(self) -> list[RecordedRequest]:
        """The accepted requests (delivered and sandboxed), oldest first. Empty in count-only mode."""
        with self._lock:
            return list(self._requests)

    @property
    def delivered_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.delivered]

    @property
    def sandboxed_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.sandboxed]

    @property
    def rejections(self) -> list[tuple[int, list[dict[str, Any]]]]:
        """(status, errors) of every request the stand-in itself refused (400/401/403/413)."""
        with self._lock:
            return list(self._rejections)

    def messages(self) -> list[StandInMessage]:
        """One message per personalization of every delivered request (not sandboxed)."""
        out: list[StandInMessage] = []
        for request in self.requests:
            if request.delivered:
                out.extend(StandInMessage(request, i) for i in range(len(request.body["personalizations"])))
        return out

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self._request_count,
                "accepted": self._accepted,
                "delivered_requests": self._delivered_requests,
                "sandboxed_requests": self._sandboxed_requests,
                "messages": self._message_count,
                "rejected": self._rejected,
                "scripted": self._scripted_count,
            }

    # ----------------------------------------------------------------- request handling

    def _respond(
        self,
        handler: _Handler,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        handler.send_response(status)
        if body:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if body:
            handler.wfile.write(body)

    def _drain(self, handler: _Handler) -> None:
        try:
            remaining = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            handler.close_connection = True
            return
        while remaining > 0:
            chunk = handler.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    def _reject(self, handler: _Handler, status: int, errors: list[dict[str, Any]], **kw: Any) -> None:
        with self._lock:
            self._rejected += 1
            if not self.count_only:
                self._rejections.append((status, errors))
        self._respond(handler, status, _errors_body(errors), **kw)

    def _handle_mail_send(self, handler: _Handler) -> None:
        with self._lock:
            self._request_count += 1

        length_header = handler.headers.get("Content-Length")
        if length_header is None or not length_header.strip().isdigit():
            self._reject(handler, 411, [_err("Content-Length is required.", None)], close=True)
            return
        length = int(length_header)
        if length > self.max_body_bytes:
            # Like SendGrid's front end: an HTML page, not JSON. Read the body first so the
            # client sees the answer rather than a reset connection.
            self._drain(handler)
            with self._lock:
                self._rejected += 1
                if not self.count_only:
                    self._rejections.append((413, []))
            self._respond(handler, 413, PAYLOAD_TOO_LARGE_HTML, content_type="text/html")
            return
        raw = handler.rfile.read(length)

        auth = handler.headers.get("Authorization", "")
        if self.forbidden_key is not None and auth == f"Bearer {self.forbidden_key}":
            self._reject(handler, 403, [_err(FORBIDDEN_MESSAGE, None)])
            return
        if auth != f"Bearer {self.api_key}":
            self._reject(handler, 401, [_err(AUTH_INVALID_MESSAGE, None)])
            return

        with self._lock:
            step = self._script.popleft() if self._script else None
            if step is not None:
                self._scripted_count += 1

        if self.latency > 0:
            self._closing.wait(self.latency)

        if step is not None:
            if step.hang > 0:
                self._closing.wait(step.hang)
            if not step.deliver:
                self._answer_scripted(handler, step)
                return

        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            if step is not None:
                self._answer_scripted(handler, step)
                return
            self._reject(handler, 400, [_err("Bad Request: the request body is not valid JSON.", None, None)])
            return

        errors = validate_mail_send(body)
        if errors:
            if step is not None:
                self._answer_scripted(handler, step)
                return
            self._reject(handler, 400, errors)
            return

        sandboxed = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        message_id = _new_message_id()
        status = 200 if sandboxed else 202
        with self._lock:
            self._accepted += 1
            if sandboxed:
                self._sandboxed_requests += 1
            else:
                self._delivered_requests += 1
                self._message_count += len(body["personalizations"])
            if not self.count_only:
                self._requests.append(
                    RecordedRequest(
                        body=body,
                        message_id=message_id,
                        status=status,
                        sandboxed=sandboxed,
                        received_at=time.time(),
                        headers={k: v for k, v in handler.headers.items() if k.lower() != "authorization"},
                    )
                )
        if step is not None:  # delivered, then an error answer
            self._answer_scripted(handler, step)
            return
        self._respond(handler, status, b"", headers={"X-Message-Id": message_id})

    def _answer_scripted(self, handler: _Handler, step: _Scripted) -> None:
        if step.status is None:  # hang, then drop the connection without a word
            handler.close_connection = True
            return
        headers = dict(step.headers)
        if step.status == 429:
            headers.setdefault("X-RateLimit-Limit", "600")
            headers.setdefault("X-RateLimit-Remaining", "0")
            if step.reset_in is not None:
                headers.setdefault("X-RateLimit-Reset", str(math.ceil(time.time() + step.reset_in)))
        if step.body is not None:
            self._respond(
                handler,
                step.status,
                step.body,
                content_type=step.content_type or "text/html",
                headers=headers,
            )
            return
        message = step.message or {
            400: "Bad Request",
            413: "Payload Too Large",
            429: "too many requests",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }.get(step.status, f"HTTP {step.status}")
        self._respond(handler, step.status, _errors_body([_err(message, None, None)]), headers=headers)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.sendgrid_standin",
        description="A local SendGrid v3 /mail/send stand-in. Prints 'READY <url>' once listening.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="SG.test")
    parser.add_argument("--forbidden-key", default="SG.forbidden")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept per request")
    parser.add_argument("--count-only", action="store_true", help="validate, but only count messages")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    standin = SendGridStandIn(
        api_key=args.api_key,
        forbidden_key=args.forbidden_key or None,
        host=args.host,
        port=args.port,
        latency=args.latency,
        count_only=args.count_only,
        verbose=args.verbose,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    standin.start()
    print(f"READY {standin.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        standin.stop()
        print(json.dumps(standin.stats()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
