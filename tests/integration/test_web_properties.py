"""Property-based tests of the public web surfaces against a live uvicorn (issue 10).

- form posts (signup, confirm, unsubscribe) with random bodies, content types and
  headers: never a 500, and a refused request never changes the store;
- tokens in paths, any spelling: never a 500, and never in a log line;
- signed webhook batches of random JSON beside one real bounce: never a 500, and
  the bounce is always stored.

The example counts are small for CI; benchmarks/fuzz_web.py runs the same surfaces
for as long as a maintainer likes.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.applications import Starlette

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.site import create_app
from tests.support.factories import make_app, signed_paths
from tests.support.webserver import WebhookSigner, bind_socket, running, sg_event

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARK = "tk9"  # begins every random token; nothing else in a log line could hold it
CONSENT_VERSION = "2026-11-v1"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + ("\n" + record.exc_text if record.exc_text else ""))


@dataclass
class Live:
    url: str
    app: App
    site: Starlette
    signer: WebhookSigner
    client: httpx.Client
    logs: Lines
    confirm_paths: list[str] = field(default_factory=list)
    unsubscribe_paths: list[str] = field(default_factory=list)

    def settle(self) -> None:
        """Wait until the signups accepted so far are done (the queue has no delay here)."""
        self.site.state.signups.join()

    def snapshot(self) -> tuple[Any, ...]:
        with transaction(self.app.engine) as session:
            people = tuple(
                session.execute(select(m.Subscriber.id, m.Subscriber.status).order_by(m.Subscriber.id))
            )
            consent = session.scalar(select(func.count()).select_from(m.ConsentEvent))
            enrollments = session.scalar(select(func.count()).select_from(m.Enrollment))
        return people, consent, enrollments


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    signer = WebhookSigner()
    sock = bind_socket()
    port = sock.getsockname()[1]
    app = make_app(
        tmp_path_factory.mktemp("web-properties"),
        environ=signer.environ,
        **{"web.public_base_url": f"http://127.0.0.1:{port}"},
    )
    site = create_app(app, rate_limit=(10**9, 600.0), signup_delay=0.0)
    logs = Lines()
    watched = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error", "nurture")]
    old_level = watched[-1].level
    watched[-1].setLevel(logging.INFO)
    for logger in watched:
        logger.addHandler(logs)
    try:
        with running(site, sock) as url, httpx.Client(base_url=url, trust_env=False, timeout=20) as client:
            live = Live(url, app, site, signer, client, logs)
            live.confirm_paths, live.unsubscribe_paths = signed_paths(
                app, 3, datetime.now(UTC), source="test"
            )
            yield live
    finally:
        for logger in watched:
            logger.removeHandler(logs)
        watched[-1].setLevel(old_level)
        app.close()


# ---------------------------------------------------------------- form posts

FIELD_NAMES = st.sampled_from(
    ["email", "first_name", "timezone", "consent_version", "website", "List-Unsubscribe"]
) | st.text(max_size=20)
FIELD_VALUES = (
    st.sampled_from(
        ["One-Click", "ana@example.com", CONSENT_VERSION, "Europe/London", "", "x" * 5000, "x" * 70_000]
    )
    | st.emails()
    | st.text(max_size=300)
)
SIGNUP_FIELDS = st.fixed_dictionaries(
    {
        "email": st.emails() | st.text(max_size=80),
        "consent_version": st.just(CONSENT_VERSION) | st.text(max_size=20),
    },
    optional={
        "first_name": st.text(max_size=250),
        "timezone": st.sampled_from(["Europe/Paris", "Mars/Base", ""]) | st.text(max_size=40),
        "website": st.just("") | st.text(max_size=10),
    },
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=zz",
        "text/plain",
        "application/json",
        "application/x-www-form-urlencoded; charset=latin-1",
    ]
) | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
# What a client can send at all: printable ASCII, no space at either end.
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80).map(
    lambda text: text.strip() or "x"
)


@st.composite
def form_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A random request as httpx keyword arguments (path chosen later)."""
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["X-Forwarded-For"] = draw(
            st.sampled_from(["203.0.113.9", "2001:db8::1", "fe80::1%" + "e" * 60]) | HEADER_TEXT
        )
    if draw(st.booleans()):
        headers["User-Agent"] = draw(HEADER_TEXT)
    kind = draw(st.sampled_from(["urlencoded", "multipart", "raw", "empty", "signup"]))
    if kind == "signup":
        fields = draw(SIGNUP_FIELDS)
        return {
            "content": urlencode(fields).encode(),
            "headers": {**headers, "Content-Type": "application/x-www-form-urlencoded"},
        }
    fields = draw(st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=8))
    if kind == "urlencoded":
        return {
            "content": urlencode(fields).encode("utf-8", "surrogatepass"),
            "headers": {**headers, "Content-Type": "application/x-www-form-urlencoded"},
        }
    if kind == "multipart":
        return {
            "files": {name: (None, value.encode("utf-8", "surrogatepass")) for name, value in fields.items()}
            or {"x": (None, b"")},
            "headers": headers,
        }
    if kind == "raw":
        return {
            "content": draw(st.binary(max_size=3000)),
            "headers": {**headers, "Content-Type": draw(CONTENT_TYPES)},
        }
    return {"headers": headers}


@SETTINGS
@given(
    target=st.sampled_from(["subscribe", "confirm", "unsubscribe"]),
    which=st.integers(0, 2),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    request=form_requests(),
)
def test_form_posts_never_fail_and_a_refusal_writes_nothing(live, target, which, method, request):
    path = {
        "subscribe": "/subscribe",
        "confirm": live.confirm_paths[which],
        "unsubscribe": live.unsubscribe_paths[which],
    }[target]
    live.settle()
    before = live.snapshot()
    response = live.client.request(method, path, **request)
    live.settle()
    assert response.status_code < 500, response.text[:300]
    if response.status_code != 200 or method != "POST":
        assert live.snapshot() == before, (response.status_code, method, path)


# ---------------------------------------------------------------- tokens in paths

TOKEN_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=0, max_size=60)


@SETTINGS
@given(
    prefix=st.sampled_from(
        [
            "/unsubscribe/",
            "/confirm/",
            "/UNSUBSCRIBE/",
            "/Confirm/",
            "/unsubscribe//",
            "/unsubscribe%2F",
            "/confirm/%2F",
            "//unsubscribe/",
        ]
    ),
    rest=TOKEN_TEXT,
    safe=st.sampled_from(["", "/", ".-_~", "/?"]),
    real=st.booleans(),
    method=st.sampled_from(["GET", "POST", "HEAD"]),
    query=st.sampled_from(["", "?first_name=" + MARK + "Zebedee", "?" + MARK]),
)
def test_tokens_in_paths_never_fail_and_never_reach_a_log(live, prefix, rest, safe, real, method, query):
    token = MARK + rest
    if real:  # a genuine token with random text after it
        token = live.unsubscribe_paths[0].rsplit("/", 1)[1] + MARK + rest
    start = len(live.logs.lines)
    raw = prefix + quote(token, safe=safe) + query
    response = live.client.request(method, httpx.URL(live.url).copy_with(raw_path=raw.encode("ascii")))
    assert response.status_code < 500
    assert response.status_code in (200, 307, 400, 404, 405), (
        response.status_code
    )  # 307: Starlette drops a trailing slash
    lines = "\n".join(live.logs.lines[start:])
    assert MARK not in lines.lower() and "zebedee" not in lines.lower(), lines
    assert live.unsubscribe_paths[0].rsplit(".", 1)[1] not in lines


# ---------------------------------------------------------------- webhook batches

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
EVENT_NAMES = st.sampled_from(
    [
        "bounce",
        "delivered",
        "open",
        "click",
        "dropped",
        "spamreport",
        "unsubscribe",
        "group_resubscribe",
        "deferred",
        "processed",
    ]
) | st.text(max_size=20)
EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "event": EVENT_NAMES | JSON_VALUES,
        "timestamp": st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=15) | JSON_VALUES,
        "sg_event_id": st.text(max_size=250) | st.integers() | JSON_VALUES,
        "delivery_id": st.text(max_size=25) | st.integers(-(10**25), 10**25) | JSON_VALUES,
        "step": st.text(max_size=12) | st.integers(-(10**12), 10**12),
        "campaign": st.text(max_size=200) | JSON_VALUES,
        "email": st.emails() | st.text(max_size=60) | JSON_VALUES,
        "reason": st.text(max_size=600) | JSON_VALUES,
        "type": st.sampled_from(["bounce", "blocked"]) | st.text(max_size=10),
        "url": st.text(max_size=300),
        "response": st.text(max_size=300),
    },
).map(
    lambda event: {**event, **({"sg_event_id": f"rnd-{uuid.uuid4()}"} if "sg_event_id" not in event else {})}
)
DEEP = st.integers(33, 3000).map(lambda depth: "[" * depth + "]" * depth)


@SETTINGS
@given(
    events=st.lists(EVENTS | JSON_VALUES, max_size=12),
    deep=st.lists(DEEP, max_size=2),
    position=st.integers(0, 20),
)
def test_a_signed_bounce_is_stored_whatever_batch_it_comes_in(live, events, deep, position):
    event_id = f"bounce-{uuid.uuid4()}"
    bounce = sg_event(
        "bounce",
        1,
        sg_event_id=event_id,
        email="person0@example.com",
        type="bounce",
        reason="550 unknown user",
    )
    items = [json.dumps(event) for event in events]
    items.insert(min(position, len(items)), json.dumps(bounce))
    items += deep
    body = "[" + ",".join(items) + "]"
    response = live.client.post(
        "/webhooks/sendgrid", content=body.encode(), headers=live.signer.headers(body)
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["received"] == len(items)
    with transaction(live.app.engine) as session:
        assert (
            session.scalar(select(m.ProviderEvent.kind).where(m.ProviderEvent.provider_event_id == event_id))
            == "bounced_hard"
        )
