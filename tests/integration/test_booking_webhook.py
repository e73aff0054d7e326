"""POST /webhooks/booking on a real server: both signature formats, stale and bad
signatures, an unknown address (same answer, nothing stored), and replays."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, at
from tests.support.webserver import LiveWeb, live_web

SECRET = "booking-secret-0123456789abcdef"
PATH = "/webhooks/booking"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[LiveWeb]:
    with live_web(tmp_path, environ={"NURTURE_BOOKING_WEBHOOK_SECRET": SECRET}) as site:
        active_subscribers(site.app, 3, at("2026-12-01 14:00"))
        yield site


def signed(
    body: bytes, *, header: str = "X-Nurture-Signature", secret: str = SECRET, stamp: int | None = None
) -> dict[str, str]:
    t = str(int(time.time()) if stamp is None else stamp)
    digest = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", header: f"t={t},v1={digest}"}


def ours(email: str, event: str = "booked") -> bytes:
    return json.dumps({"email": email, "event": event}).encode()


def calendly(email: str, event: str = "invitee.created") -> bytes:
    payload = {
        "event": event,
        "created_at": "2026-12-01T15:00:00.000000Z",
        "payload": {
            "email": email,
            "name": "Robin Quintessa-Example",
            "questions_and_answers": [
                {"question": "What brings you here?", "answer": "Sleepless-Zebra-Reason"}
            ],
            "scheduled_event": {"start_time": "2026-12-09T17:00:00.000000Z", "name": "Consultation"},
        },
    }
    return json.dumps(payload).encode()


def post(web: LiveWeb, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with web.client() as client:
        return client.post(PATH, content=body, headers=headers)


def counts(web: LiveWeb) -> dict[str, int]:
    with transaction(web.app.engine) as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in (
                ("subscribers", m.Subscriber),
                ("tags", m.SubscriberTag),
                ("consent", m.ConsentEvent),
                ("suppressions", m.Suppression),
            )
        }


def booked(web: LiveWeb, email: str) -> tuple[bool, list[Any]]:
    with transaction(web.app.engine) as session:
        subscriber = session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == email))
        assert subscriber is not None
        tags = set(
            session.scalars(select(m.SubscriberTag.tag).where(m.SubscriberTag.subscriber_id == subscriber.id))
        )
        records = list(
            session.execute(
                select(m.ConsentEvent.kind, m.ConsentEvent.source, m.ConsentEvent.detail).where(
                    m.ConsentEvent.subscriber_id == subscriber.id, m.ConsentEvent.kind == m.ConsentKind.BOOKED
                )
            )
        )
        return "booked" in tags, records


def test_our_format_tags_the_person_and_ends_their_series(web: LiveWeb) -> None:
    response = post(web, ours("person0@example.com"), signed(ours("person0@example.com")))
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    is_booked, records = booked(web, "person0@example.com")
    assert is_booked and [tuple(r) for r in records] == [("booked", "booking webhook (signed)", None)]
    with transaction(web.app.engine) as session:
        statuses = dict(session.execute(select(m.Enrollment.subscriber_id, m.Enrollment.status)).all())
    assert sorted(statuses.values()) == ["active", "active", "stopped"]
    summary = send_due(web.app, at("2026-12-01 15:00"))
    assert summary.sent == 2, "the booked person gets no more of the series"


def test_calendly_format_and_nothing_else_from_the_booking_is_kept(web: LiveWeb, tmp_path: Path) -> None:
    body = calendly("Person1@Example.com")
    response = post(web, body, signed(body, header="Calendly-Webhook-Signature"))
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    is_booked, records = booked(web, "person1@example.com")
    assert is_booked and [tuple(r) for r in records] == [("booked", "booking webhook (calendly)", None)]
    web.app.engine.dispose()  # type: ignore[union-attr]
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("nurture.db*"))
    for detail in (b"Quintessa", b"Sleepless-Zebra", b"2026-12-09", b"Consultation"):
        assert detail not in stored


def test_other_calendly_events_are_acknowledged_and_ignored(web: LiveWeb) -> None:
    before = counts(web)
    body = calendly("person1@example.com", "invitee.canceled")
    response = post(web, body, signed(body, header="Calendly-Webhook-Signature"))
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert counts(web) == before


def test_an_unknown_address_gets_the_same_answer_and_nothing_is_stored(web: LiveWeb) -> None:
    before = counts(web)
    known = post(web, ours("person2@example.com"), signed(ours("person2@example.com")))
    middle = counts(web)
    unknown = post(web, ours("stranger@example.com"), signed(ours("stranger@example.com")))
    not_an_address = post(web, ours("no-at-sign"), signed(ours("no-at-sign")))
    assert known.status_code == unknown.status_code == not_an_address.status_code == 200
    assert known.content == unknown.content == not_an_address.content
    assert middle == {**before, "tags": before["tags"] + 1, "consent": before["consent"] + 1}
    assert counts(web) == middle, "an unknown address creates nothing"


def test_a_replay_is_harmless(web: LiveWeb) -> None:
    body = ours("person0@example.com")
    headers = signed(body)
    first = post(web, body, headers)
    after_first = counts(web)
    again = post(web, body, headers)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert counts(web) == after_first
    assert len(booked(web, "person0@example.com")[1]) == 1


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda body: signed(body, stamp=int(time.time()) - 360), id="stale"),
        pytest.param(lambda body: signed(body, stamp=int(time.time()) + 360), id="from-the-future"),
        pytest.param(lambda body: signed(body, secret="not-the-secret-at-all"), id="wrong-secret"),
        pytest.param(lambda body: signed(body + b" "), id="body-changed"),
        pytest.param(
            lambda body: signed(body, header="Calendly-Webhook-Signature", stamp=int(time.time()) - 600),
            id="calendly-stale",
        ),
        pytest.param(lambda body: {"Content-Type": "application/json"}, id="unsigned"),
        pytest.param(lambda body: {"X-Nurture-Signature": "v1=abc"}, id="no-timestamp"),
        pytest.param(lambda body: {"X-Nurture-Signature": "t=abc,v1=abc"}, id="garbage"),
    ],
)
def test_bad_or_stale_signatures_get_403_and_change_nothing(web: LiveWeb, make_headers: Any) -> None:
    before = counts(web)
    body = ours("person0@example.com")
    response = post(web, body, make_headers(body))
    assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
    assert counts(web) == before


def test_without_a_secret_every_booking_is_refused(tmp_path: Path) -> None:
    with live_web(tmp_path) as site:
        active_subscribers(site.app, 1, at("2026-12-01 14:00"))
        body = ours("person0@example.com")
        response = post(site, body, signed(body))
        assert response.status_code == 403
        assert booked(site, "person0@example.com")[0] is False


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"event": "booked"}',
        b'{"event": "booked", "email": 7}',
        b"[" * 60_000,
        b'{"event": "booked", "email": "a@b.c"',
    ],
)
def test_unusable_bodies_get_400_never_500(web: LiveWeb, body: bytes) -> None:
    response = post(web, body, signed(body))
    assert (response.status_code, response.json()) == (400, {"error": "bad request"})


def test_the_body_size_is_bounded(web: LiveWeb) -> None:
    body = json.dumps({"email": "person0@example.com", "event": "booked", "padding": "x" * 70_000}).encode()
    response = post(web, body, signed(body))
    assert response.status_code == 413
    assert booked(web, "person0@example.com")[0] is False
