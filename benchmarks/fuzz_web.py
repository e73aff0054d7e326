"""Fuzz the public web surfaces of a live `nurture serve` on 127.0.0.1, for as long as you like.

    .venv/bin/python benchmarks/fuzz_web.py                      # 3,000 inputs, about a minute
    .venv/bin/python benchmarks/fuzz_web.py --inputs 10000 --seed 7
    .venv/bin/python benchmarks/fuzz_web.py --surface webhooks --inputs 50000

Three surfaces, taken in turn:
  forms     POST (and GET, PUT, ...) /subscribe, /confirm/<real token>, /unsubscribe/<real token>
            with random fields, raw bytes, multipart, odd content types, big bodies and headers
  tokens    /confirm/ and /unsubscribe/ in any case and separator, followed by random text,
            percent-encoded or not, with names in the query string
  webhooks  signed SendGrid batches of random JSON (lone surrogates, deep nesting, huge numbers)
            around one real bounce; one in ten with a broken signature or timestamp

Counted per surface (a clean run is all zeros):
  tracebacks      an answer of 500 or more, or a traceback in the server's log
  hangs           no answer within --timeout seconds
  partial writes  the store changed although the request was refused (or was not a POST)
  log leaks       a log line (access, server or nurture's) or a stored detail holding a
                  generated name, address or token
  wrong           any other broken promise: a signed bounce not stored, a bad signature not 403

Every generated name, address and token carries the mark "fz7", so a leak is any "fz7" in a
log line or a stored detail. The server is the real app under uvicorn with nurture's own
logging settings (access lines by route); its console output is silenced, the records kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import func, select

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.site import create_app
from tests.support.factories import make_app, signed_paths
from tests.support.webserver import WebhookSigner, bind_socket, running, sg_event

MARK = "fz7"
CONSENT_VERSION = "2026-11-v1"
SURFACES = ("forms", "tokens", "webhooks")
COLUMNS = ("inputs", "tracebacks", "hangs", "partial writes", "log leaks", "wrong")


# ---------------------------------------------------------------- random material


class Maker:
    """Random inputs from one seeded generator, so a run can be repeated exactly."""

    ODD = [
        "%2F",
        "%2f",
        "%00",
        "%",
        "..",
        "/",
        "\\",
        "?",
        "#",
        "&",
        "=",
        "+",
        ";",
        "\u202e",
        "\u200b",
        "\ufeff",
        "ａ",
        "＠",
        "\u2003",
        "\t",
        "\r\n",
        "\x00",
        "\x7f",
        "é",
        "😀",
        "<script>",
        "'",
        '"',
        "{{ 1/0 }}",
    ]

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.n = 0

    def mark(self) -> str:
        self.n += 1
        return f"{MARK}{self.n}"

    def char(self) -> str:
        pick = self.r.random()
        if pick < 0.6:
            return chr(self.r.randint(32, 126))
        if pick < 0.75:
            return chr(self.r.randint(0, 31))
        if pick < 0.95:
            code = self.r.randint(128, 0x10FFFF)
            return chr(code) if not 0xD800 <= code <= 0xDFFF else "?"
        return self.r.choice(self.ODD)

    def text(self, size: int = 40) -> str:
        return "".join(self.char() for _ in range(self.r.randint(0, size)))

    def email(self) -> str:
        local = self.mark() + self.r.choice(["", ".x", "+tag", "-x_y"])
        form = self.r.randint(0, 5)
        if form == 0:
            return f'"{local} {self.r.randint(0, 9)}"@example.com'
        if form == 1:
            return f"{local}@[127.0.0.{self.r.randint(1, 254)}]"
        if form == 2:
            return f"{local}%40example.com"
        if form == 3:
            return f"{local.upper()}@Example.COM"
        return f"{local}@example.com"

    def name(self) -> str:
        return (
            self.r.choice(["", "Ms ", "dr. "])
            + self.mark().capitalize()
            + self.r.choice(["", " Ana", "\u00e9", "\n", "<b>"])
        )

    def json_value(self, depth: int = 0) -> Any:
        pick = self.r.randint(0, 9 if depth < 4 else 5)
        if pick == 0:
            return None
        if pick == 1:
            return self.r.choice([True, False])
        if pick == 2:
            return self.r.choice([0, -1, 2**31, 2**63, -(2**70), self.r.randint(-(10**12), 10**12)])
        if pick == 3:
            return self.r.choice(
                [0.5, 1e308, -1e-308, float("inf"), float("nan"), self.r.uniform(-1e10, 1e10)]
            )
        if pick == 4:
            return self.text()
        if pick == 5:
            return chr(self.r.randint(0xD800, 0xDFFF)) + self.text(5)  # a lone surrogate, sent as \\udXXX
        if pick in (6, 7):
            return [self.json_value(depth + 1) for _ in range(self.r.randint(0, 4))]
        return {self.text(10): self.json_value(depth + 1) for _ in range(self.r.randint(0, 4))}


# ---------------------------------------------------------------- the server and what it logs


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info or record.exc_text:
            text += "\nTraceback " + (record.exc_text or "")
        self.lines.append(text)


@dataclass
class Target:
    url: str
    app: App
    signups: Any
    signer: WebhookSigner
    logs: Lines
    confirm_paths: list[str] = field(default_factory=list)
    unsubscribe_paths: list[str] = field(default_factory=list)

    def state(self) -> tuple[Any, ...]:
        """A cheap fingerprint of everything a request could change."""
        self.signups.join()
        with transaction(self.app.engine) as session:
            statuses = tuple(
                session.execute(
                    select(m.Subscriber.status, func.count())
                    .group_by(m.Subscriber.status)
                    .order_by(m.Subscriber.status)
                )
            )
            consent = session.scalar(select(func.count()).select_from(m.ConsentEvent))
            enrollments = session.scalar(select(func.count()).select_from(m.Enrollment))
            events = session.scalar(select(func.max(m.ProviderEvent.id))) or 0
        return statuses, consent, enrollments, events


@contextmanager
def serve(folder: Path) -> Iterator[Target]:
    signer = WebhookSigner()
    sock = bind_socket()
    port = sock.getsockname()[1]
    app = make_app(folder, environ=signer.environ, **{"web.public_base_url": f"http://127.0.0.1:{port}"})
    site = create_app(app, rate_limit=(10**9, 600.0), signup_delay=0.0)
    logs = Lines()
    loggers = [
        logging.getLogger(name)
        for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "nurture", "python_multipart")
    ]
    logging.getLogger("nurture").setLevel(logging.INFO)
    try:
        with running(site, sock) as url:
            for logger in loggers:
                for handler in logger.handlers:
                    handler.setLevel(
                        logging.CRITICAL + 1
                    )  # the console stays quiet; `logs` keeps every record
                logger.addHandler(logs)
            target = Target(url, app, site.state.signups, signer, logs)
            target.confirm_paths, target.unsubscribe_paths = signed_paths(
                app, 40, datetime.now(UTC), source="fuzz"
            )
            yield target
    finally:
        for logger in loggers:
            logger.removeHandler(logs)
        app.close()


# ---------------------------------------------------------------- one input per surface


@dataclass
class Outcome:
    response: httpx.Response | None  # None: no answer in time
    may_write: bool  # whether this request was allowed to change the store
    wrong: bool = False


def form_input(mk: Maker, target: Target, client: httpx.Client) -> Outcome:
    r = mk.r
    path = r.choice(
        ["/subscribe", "/subscribe", r.choice(target.confirm_paths), r.choice(target.unsubscribe_paths)]
    )
    method = r.choice(["POST"] * 6 + ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
    fields: dict[str, str] = {}
    if r.random() < 0.5:  # close to a real signup
        fields = {
            "email": mk.email(),
            "first_name": mk.name(),
            "timezone": r.choice(["", "Europe/Paris", "Mars/Base", mk.text(20)]),
            "consent_version": r.choice([CONSENT_VERSION, CONSENT_VERSION, mk.text(10)]),
            "website": r.choice(["", "", mk.text(5)]),
        }
    for _ in range(r.randint(0, 5)):
        fields[r.choice(["email", "first_name", "List-Unsubscribe", "timezone", mk.text(15)])] = r.choice(
            ["One-Click", mk.email(), mk.name(), mk.text(200), "x" * r.choice([10, 5000, 70_000])]
        )
    headers: dict[str, str] = {}
    if r.random() < 0.3:
        headers["X-Forwarded-For"] = r.choice(
            ["203.0.113.9", "2001:db8::1", "fe80::1%" + "e" * 60, "not-an-ip", "1.2.3.4, 5.6.7.8"]
        )
    if r.random() < 0.3:
        headers["User-Agent"] = "".join(chr(r.randint(33, 126)) for _ in range(r.randint(1, 500)))
    kind = r.randint(0, 4)
    kwargs: dict[str, Any]
    if kind <= 1:
        kwargs = {
            "content": urlencode(fields).encode("utf-8", "surrogatepass"),
            "headers": {**headers, "Content-Type": "application/x-www-form-urlencoded"},
        }
    elif kind == 2:
        kwargs = {
            "files": {k: (None, v.encode("utf-8", "surrogatepass")) for k, v in fields.items()}
            or {"x": (None, b"")},
            "headers": headers,
        }
    elif kind == 3:
        content_type = r.choice(
            [
                "multipart/form-data",
                "multipart/form-data; boundary=q",
                "text/plain",
                "application/json",
                "application/x-www-form-urlencoded",
                "".join(chr(r.randint(33, 126)) for _ in range(20)),
            ]
        )
        kwargs = {
            "content": r.randbytes(r.choice([0, 10, 500, 3000, 70_000])),
            "headers": {**headers, "Content-Type": content_type},
        }
    else:
        kwargs = {"headers": headers}
    response = client.request(method, path, **kwargs)
    return Outcome(response, may_write=method == "POST" and response.status_code == 200)


PREFIXES = [
    "/unsubscribe/",
    "/confirm/",
    "/UNSUBSCRIBE/",
    "/Confirm/",
    "/unsubscribe//",
    "/unsubscribe%2F",
    "/confirm%2f",
    "//unsubscribe/",
    "/unsubscribe/%2F",
    "/Unsubscribe/",
]


def token_input(mk: Maker, target: Target, client: httpx.Client) -> Outcome:
    r = mk.r
    real = r.choice(target.unsubscribe_paths + target.confirm_paths).rsplit("/", 1)[1]
    token = r.choice(
        [
            mk.mark() + mk.text(30),
            real + mk.mark(),
            mk.mark() + "." + real.split(".")[1],
            real.split(".")[0] + "." + mk.mark(),
        ]
    )
    query = r.choice(["", f"?first_name={mk.name()}", f"?email={mk.email()}", "?" + mk.mark()])
    raw = r.choice(PREFIXES) + quote(token, safe=r.choice(["", "/", ".-_~", "/?"])) + quote(query, safe="?=&")
    method = r.choice(["GET", "POST", "HEAD"])
    response = client.request(method, httpx.URL(target.url).copy_with(raw_path=raw.encode("ascii")))
    return Outcome(
        response,
        may_write=method == "POST" and response.status_code == 200,
        wrong=response.status_code not in (200, 307, 400, 404, 405),
    )  # 307: Starlette drops a trailing slash


ABSURD_STAMPS = ["999999999999", "253402300800", "\u00b2", "-1", "1e9", "", "0x10", "9" * 40]


def webhook_input(mk: Maker, target: Target, client: httpx.Client) -> Outcome:
    r = mk.r
    bounce_id = f"fz-bounce-{uuid.uuid4()}"
    bounce = sg_event(
        "bounce",
        1,
        sg_event_id=bounce_id,
        email=mk.email(),
        type="bounce",
        reason=f"550 5.1.1 <{mk.email()}> unknown {mk.text(20)}",
    )
    items: list[str] = []
    for _ in range(r.randint(0, 12)):
        pick = r.random()
        if pick < 0.5:
            event = {
                key: r.choice([mk.json_value(), mk.text(30), mk.email()])
                for key in r.sample(
                    [
                        "event",
                        "timestamp",
                        "sg_event_id",
                        "delivery_id",
                        "step",
                        "campaign",
                        "email",
                        "reason",
                        "type",
                        "url",
                        "response",
                    ],
                    r.randint(0, 8),
                )
            }
            if r.random() < 0.5:
                event["event"] = r.choice(
                    [
                        "bounce",
                        "dropped",
                        "open",
                        "click",
                        "spamreport",
                        "deferred",
                        "group_unsubscribe",
                        mk.text(10),
                    ]
                )
                event["timestamp"] = r.choice([int(time.time()), "1764590400", mk.json_value()])
            items.append(json.dumps(event))
        elif pick < 0.8:
            items.append(json.dumps(mk.json_value()))
        elif pick < 0.9:
            depth = r.choice([33, 200, 5000, 100_000])
            items.append("[" * depth + "]" * depth)
        else:
            items.append(
                r.choice(
                    [
                        "9" * 5000,
                        "NaN",
                        "-Infinity",
                        '"\\ud800"',
                        '{"event":"open","timestamp":1764590400,"sg_event_id":"\\udfff"}',
                    ]
                )
            )
    items.insert(r.randint(0, len(items)), json.dumps(bounce))
    body = "[" + ",".join(items) + "]" + r.choice(["", "\r\n"])
    headers = target.signer.headers(body)
    tampered = r.random() < 0.1
    if tampered:
        how = r.randint(0, 2)
        if how == 0:
            headers["X-Twilio-Email-Event-Webhook-Timestamp"] = r.choice(ABSURD_STAMPS)
        elif how == 1:
            headers["X-Twilio-Email-Event-Webhook-Signature"] = r.choice(
                ["", "AAAA", "not base64!", mk.text(10).encode("ascii", "replace").decode()]
            )
        else:
            body = body.replace("bounce", "bounce ", 1)
    try:
        response = client.post(
            "/webhooks/sendgrid",
            content=body.encode("utf-8", "surrogatepass"),
            headers={k: v.encode("latin-1", "replace") for k, v in headers.items()},
        )
    except httpx.LocalProtocolError:
        return Outcome(
            None, may_write=False
        )  # a header the client itself will not send: nothing reached the server
    with transaction(target.app.engine) as session:
        stored = session.scalar(
            select(func.count())
            .select_from(m.ProviderEvent)
            .where(m.ProviderEvent.provider_event_id == bounce_id)
        )
    if tampered:
        wrong = response.status_code != 403 or stored != 0
    else:
        wrong = response.status_code != 200 or stored != 1
    return Outcome(response, may_write=not tampered and response.status_code == 200, wrong=wrong)


DRIVERS: dict[str, Callable[[Maker, Target, httpx.Client], Outcome]] = {
    "forms": form_input,
    "tokens": token_input,
    "webhooks": webhook_input,
}


# ---------------------------------------------------------------- running


def leaked(lines: list[str]) -> bool:
    text = unicodedata.normalize("NFKC", "\n".join(lines)).casefold()
    return MARK in text


def stored_detail_leaked(target: Target, after_id: int) -> bool:
    with transaction(target.app.engine) as session:
        details = session.scalars(select(m.ProviderEvent.detail).where(m.ProviderEvent.id > after_id)).all()
    return leaked([detail for detail in details if detail])


def describe(surface: str, outcome: Outcome | None, problems: list[str]) -> str:
    if outcome is None or outcome.response is None:
        return f"{surface}: {', '.join(problems)}: no answer"
    request = outcome.response.request
    path = request.url.raw_path[:120]
    return f"{surface}: {', '.join(problems)}: {request.method} {path!r} -> {outcome.response.status_code}"


def run(
    inputs: int, seed: int, surfaces: list[str], timeout: float, show: int = 0
) -> dict[str, dict[str, int]]:
    mk = Maker(seed)
    counts = {surface: dict.fromkeys(COLUMNS, 0) for surface in surfaces}
    with tempfile.TemporaryDirectory() as folder, serve(Path(folder)) as target:
        client = httpx.Client(base_url=target.url, trust_env=False, timeout=timeout)
        started = time.monotonic()
        try:
            for number in range(inputs):
                surface = surfaces[number % len(surfaces)]
                row = counts[surface]
                row["inputs"] += 1
                before = target.state()
                first_line = len(target.logs.lines)
                try:
                    outcome = DRIVERS[surface](mk, target, client)
                except httpx.TimeoutException:
                    row["hangs"] += 1
                    client.close()
                    client = httpx.Client(base_url=target.url, trust_env=False, timeout=timeout)
                    continue
                after = target.state()
                lines = target.logs.lines[first_line:]
                problems = []
                if (outcome.response is not None and outcome.response.status_code >= 500) or any(
                    "Traceback" in line for line in lines
                ):
                    problems.append("tracebacks")
                if after != before and not outcome.may_write:
                    problems.append("partial writes")
                if leaked(lines) or stored_detail_leaked(target, before[-1]):
                    problems.append("log leaks")
                if outcome.wrong:
                    problems.append("wrong")
                for problem in problems:
                    row[problem] += 1
                if problems and show > 0:
                    show -= 1
                    print("  " + describe(surface, outcome, problems), file=sys.stderr)
                if (number + 1) % 1000 == 0:
                    print(f"  {number + 1} inputs, {time.monotonic() - started:.0f} s", file=sys.stderr)
        finally:
            client.close()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=3000, help="how many requests in all (default 3000)")
    parser.add_argument(
        "--seed", type=int, default=1, help="the same seed repeats the same inputs (default 1)"
    )
    parser.add_argument("--surface", choices=[*SURFACES, "all"], default="all")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds before a request counts as a hang (default 10)"
    )
    parser.add_argument(
        "--show", type=int, default=10, help="describe the first N problem inputs on stderr (default 10)"
    )
    args = parser.parse_args()
    surfaces = list(SURFACES) if args.surface == "all" else [args.surface]
    started = time.monotonic()
    counts = run(args.inputs, args.seed, surfaces, args.timeout, args.show)
    print(f"fuzz_web: {args.inputs} inputs, seed {args.seed}, {time.monotonic() - started:.0f} s")
    print(f"{'surface':<10}" + "".join(f"{column:>16}" for column in COLUMNS))
    for surface, row in counts.items():
        print(f"{surface:<10}" + "".join(f"{row[column]:>16}" for column in COLUMNS))
    failures = sum(value for row in counts.values() for column, value in row.items() if column != "inputs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
