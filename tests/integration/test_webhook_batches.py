"""A signed batch with one broken event still stores the rest (issue 10, item 3).

Broken here means what JSON allows but a database cannot take (a lone surrogate, a NUL,
a step past INTEGER), what Python's own parsing trips on (100,000 levels of nesting,
a 5,000-digit number, digits int() does not read), or both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.providers.sendgrid import event_webhook as wh
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import handle_sendgrid
from tests.support.factories import active_subscribers, make_app
from tests.support.webserver import WebhookSigner, sg_event, webhook_body


class Hook:
    def __init__(self, app: App, signer: WebhookSigner) -> None:
        self.app = app
        self.signer = signer

    def post(self, body: str) -> wh.WebhookReport:
        now = datetime.now(UTC)
        return handle_sendgrid(
            self.app, body.encode(), self.signer.headers(body, timestamp=int(now.timestamp())), now
        )

    def post_events(self, events: list[Any]) -> wh.WebhookReport:
        return self.post(webhook_body(events))

    def stored_ids(self) -> set[str]:
        with transaction(self.app.engine) as session:
            return set(session.scalars(select(m.ProviderEvent.provider_event_id)))

    def status(self, subscriber_id: int) -> str:
        with transaction(self.app.engine) as session:
            return session.get(m.Subscriber, subscriber_id).status


def make_hook(tmp_path, **overrides: Any) -> Iterator[Hook]:
    signer = WebhookSigner()
    app = make_app(tmp_path, environ=signer.environ, **overrides)
    try:
        yield Hook(app, signer)
    finally:
        app.close()


@pytest.fixture
def hook(tmp_path) -> Iterator[Hook]:
    yield from make_hook(tmp_path)


def bounce(n: int = 1) -> dict[str, Any]:
    return sg_event(
        "bounce", n, delivery_id=None, email="person0@example.com", type="bounce", reason="550 unknown user"
    )


LONE = "\ud800"


@pytest.mark.parametrize("field", ["event", "sg_event_id", "reason", "campaign", "email", "url", "a key"])
def test_a_lone_surrogate_skips_that_event_and_keeps_the_bounce(hook, field):
    sid = active_subscribers(hook.app, 1, datetime.now(UTC))[0]
    broken = sg_event("dropped", 2, reason="Bounced Address", url="https://x.example/")
    if field == "a key":
        broken["note" + LONE] = "x"
    else:
        broken[field] = f"x{LONE}y"
    report = hook.post_events([broken, bounce()])
    assert (report.received, report.stored, report.malformed) == (2, 1, 1)
    assert hook.stored_ids() == {"evt-bounce-1"}
    assert hook.status(sid) == m.SubscriberStatus.BOUNCED


def test_a_body_nested_100000_deep_is_one_malformed_event_not_a_crash(hook):
    deep = "[" * 100_000 + "]" * 100_000
    report = hook.post("[" + json.dumps(bounce()) + "," + deep + "," + json.dumps(sg_event("open", 3)) + "]")
    assert (report.received, report.stored, report.malformed) == (3, 2, 1)
    alone = hook.post(deep)
    assert (alone.received, alone.stored, alone.malformed) == (1, 0, 1)
    objects = '{"a":' * 100_000 + "1" + "}" * 100_000
    assert hook.post("[" + objects + "]").malformed == 1


def test_oversized_numbers_and_nan_do_not_sink_the_batch(hook):
    body = (
        "["
        + json.dumps(bounce())
        + ',{"event":"open","timestamp":'
        + "9" * 5000
        + ',"sg_event_id":"n1"},{"event":"open","timestamp":NaN,"sg_event_id":"n2"}]'
    )
    report = hook.post(body)
    assert (report.received, report.stored, report.malformed) == (3, 1, 2)


def test_control_characters_in_stored_names_skip_the_event_and_leave_details_clean(hook):
    report = hook.post_events(
        [
            sg_event("open", 1, sg_event_id="a\x00b"),
            sg_event("open", 2, campaign="c\x00"),
            bounce(3) | {"reason": "550\x00 gone\x07"},
        ]
    )
    assert (report.stored, report.malformed) == (1, 2)
    with transaction(hook.app.engine) as session:
        assert session.scalar(select(m.ProviderEvent.detail)) == "type=bounce; reason=550 gone"


@pytest.mark.postgres
def test_what_postgresql_refuses_never_reaches_it(tmp_path, postgres_url):
    for hook in make_hook(tmp_path, database_url=postgres_url):
        events = [
            sg_event("open", 1, sg_event_id="nul\x00id"),
            sg_event("open", 2, step=str(2**40)),
            sg_event("dropped", 3, reason=f"x{LONE}"),
            bounce(4) | {"reason": "a\x00b"},
        ]
        report = hook.post_events(events)
        assert (report.received, report.stored, report.malformed) == (4, 2, 2)


@pytest.mark.parametrize(
    "reason",
    [
        '550 5.1.1 <"leak 7"@example.com>: no such user',
        "550 5.1.1 leak8@[127.0.0.1] unknown",
        "clicked https://example.com/Unsubscribe/MXxh.baim-2-Kd9Pv_UwBzNUnnw",
        "clicked https://example.com/unsubscribe%2FMXxh.baim-2-Kd9Pv_UwBzNUnnw",
        "to leak9%40example.com%0Aand more",
    ],
)
def test_stored_details_hold_no_address_or_token_in_any_spelling(hook, reason):
    hook.post_events([bounce(1) | {"reason": reason}])
    with transaction(hook.app.engine) as session:
        detail = session.scalar(select(m.ProviderEvent.detail))
    assert detail.startswith("type=bounce; reason=")
    for secret in ("leak", "Kd9Pv_UwBzNUnnw", "\n"):
        assert secret not in detail, detail
