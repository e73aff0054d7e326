"""The web endpoints, against a real uvicorn server on 127.0.0.1 (issue 5)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from starlette.routing import Mount, Route
from uvicorn.logging import AccessFormatter

from nurture import tokens
from nurture.app import App
from nurture.audience.signup import subscribe
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.logs import UNKNOWN_PATH, route_template
from tests.support.factories import SECRET, active_subscribers, at
from tests.support.webserver import LiveWeb, WebhookSigner, live_web, sg_event, webhook_body

NOW = at("2026-12-01 15:00")  # 10:00 in New York: inside the default send window
UA = "nurture-test-agent/1.0"


@dataclass
class Site:
    web: LiveWeb
    signer: WebhookSigner
    client: httpx.Client

    @property
    def app(self) -> App:
        return self.web.app


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    signer = WebhookSigner()
    with live_web(tmp_path, environ=signer.environ) as web, web.client(headers={"User-Agent": UA}) as client:
        yield Site(web, signer, client)


# ---------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def subscriber(app: App, subscriber_id: int) -> m.Subscriber:
    with transaction(app.engine) as session:
        return session.get(m.Subscriber, subscriber_id)


def consent_events(app: App, subscriber_id: int) -> list[m.ConsentEvent]:
    with transaction(app.engine) as session:
        return session.scalars(
            select(m.ConsentEvent)
            .where(m.ConsentEvent.subscriber_id == subscriber_id)
            .order_by(m.ConsentEvent.id)
        ).all()


def count(app: App, model: Any) -> int:
    with transaction(app.engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def unsubscribe_path(subscriber_id: int, stream: str = "kap-intro", secret: str = SECRET) -> str:
    return f"/unsubscribe/{tokens.make_unsubscribe_token(secret, subscriber_id, stream)}"


def confirm_path(subscriber_id: int, nonce: int, issued: datetime, secret: str = SECRET) -> str:
    return f"/confirm/{tokens.make_confirm_token(secret, subscriber_id, nonce, issued)}"


def pending(app: App, email: str = "sam@example.com", now: datetime | None = None) -> int:
    return subscribe(app, email, now or datetime.now(UTC), first_name="Sam", source="test").subscriber_id


def form(**values: str) -> dict[str, str]:
    return {
        "email": "",
        "first_name": "",
        "timezone": "",
        "consent_version": "2026-11-v1",
        "website": "",
        **values,
    }


def main_text(html: str) -> str:
    """The <main> of a page, tags stripped: what the page says."""
    body = html.split("<main>", 1)[1].split("</main>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def post_events(site: Site, events: list[Any], *, timestamp: int | None = None) -> httpx.Response:
    body = webhook_body(events)
    return site.client.post(
        "/webhooks/sendgrid", content=body.encode(), headers=site.signer.headers(body, timestamp=timestamp)
    )


def one_click(client: httpx.Client, path: str, encoding: str) -> httpx.Response:
    if encoding == "multipart":
        return client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    return client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


# ---------------------------------------------------------------- what is exposed


def test_healthz_answers_ok_after_a_query(site):
    response = site.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_answers_503_when_the_database_does_not(site, monkeypatch, caplog):
    def broken():
        raise OSError("disk on fire at /var/lib/secret.db")

    monkeypatch.setattr(site.app.engine, "raw_connection", broken)
    response = site.client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error"}
    assert "disk on fire" not in response.text


@pytest.mark.postgres
def test_the_same_endpoints_on_postgresql(tmp_path, postgres_url):
    signer = WebhookSigner()
    with (
        live_web(tmp_path, environ=signer.environ, **{"database.url": postgres_url}) as web,
        web.client() as client,
    ):
        assert client.get("/healthz").json() == {"status": "ok"}
        sid = active_subscribers(web.app, 1, NOW)[0]
        assert one_click(client, unsubscribe_path(sid), "urlencoded").status_code == 200
        assert subscriber(web.app, sid).status == m.SubscriberStatus.UNSUBSCRIBED
        body = webhook_body([sg_event("open", 1), sg_event("open", 1)])
        assert (
            client.post("/webhooks/sendgrid", content=body.encode(), headers=signer.headers(body)).json()[
                "stored"
            ]
            == 1
        )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/admin", 404),
        ("GET", "/static/style.css", 404),
        ("GET", "/unsubscribe", 404),
        ("GET", "/webhooks/sendgrid", 405),
        ("POST", "/healthz", 405),
        ("PUT", "/subscribe", 405),
    ],
)
def test_nothing_else_is_exposed(site, method, path, status):
    response = site.client.request(method, path)
    assert response.status_code == status
    assert "set-cookie" not in response.headers


def test_pages_are_plain_private_and_self_contained(site):
    sid = active_subscribers(site.app, 1, NOW)[0]
    for path in (
        "/subscribe",
        unsubscribe_path(sid),
        confirm_path(pending(site.app, "ana@example.com"), 1, datetime.now(UTC)),
    ):
        response = site.client.get(path)
        assert response.status_code == 200, path
        page = response.text
        assert '<html lang="en">' in page
        assert 'name="viewport"' in page
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "set-cookie" not in response.headers
        assert not re.search(r"<(link|img|iframe)\b|\bsrc=|https?://", page), (
            "no external resources, no tracking"
        )
        # Practice name and postal address in the footer.
        footer = page.split("<footer>", 1)[1]
        assert site.app.config.practice.name in footer and site.app.config.practice.postal_address in footer
        # Nothing about the subscriber, and no token in the page.
        assert "person0" not in page and "ana@" not in page and "Sam" not in page
        assert path.rsplit("/", 1)[1] not in page or path == "/subscribe"


# ---------------------------------------------------------------- unsubscribe


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_one_click_unsubscribe_in_both_encodings(site, encoding):
    sid = active_subscribers(site.app, 1, NOW)[0]
    with site.web.client() as fresh:  # no cookies, no user agent of ours: like a mailbox provider
        response = one_click(fresh, unsubscribe_path(sid), encoding)
        assert not fresh.cookies
    assert response.status_code == 200
    assert not response.is_redirect and "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert "You are unsubscribed" in response.text
    assert subscriber(site.app, sid).status == m.SubscriberStatus.UNSUBSCRIBED
    last = consent_events(site.app, sid)[-1]
    assert (last.kind, last.source, last.ip, last.detail) == (
        m.ConsentKind.UNSUBSCRIBE,
        "one-click (List-Unsubscribe-Post)",
        "127.0.0.1",
        "from kap-intro",
    )
    with transaction(site.app.engine) as session:
        assert set(session.scalars(select(m.Enrollment.status).where(m.Enrollment.subscriber_id == sid))) == {
            m.EnrollmentStatus.STOPPED
        }

    again = one_click(site.client, unsubscribe_path(sid), encoding)
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert [event.kind for event in consent_events(site.app, sid)].count(m.ConsentKind.UNSUBSCRIBE) == 1


def test_the_unsubscribe_page_names_the_practice_and_only_the_button_unsubscribes(site):
    sid = active_subscribers(site.app, 1, NOW)[0]
    path = unsubscribe_path(sid)
    for _ in range(3):
        page = site.client.get(path)
        assert page.status_code == 200
        assert site.client.head(path).status_code == 200
    assert site.app.config.practice.name in main_text(page.text)
    assert page.text.count("<button") == 1 and '<form method="post">' in page.text
    assert subscriber(site.app, sid).status == m.SubscriberStatus.ACTIVE
    assert [event.kind for event in consent_events(site.app, sid)] == [m.ConsentKind.IMPORT]

    pressed = site.client.post(path, data={})  # what the page's button sends
    assert pressed.status_code == 200
    assert main_text(pressed.text).startswith("You are unsubscribed")
    assert subscriber(site.app, sid).status == m.SubscriberStatus.UNSUBSCRIBED
    last = consent_events(site.app, sid)[-1]
    assert (last.source, last.user_agent) == ("web unsubscribe page", UA)


def test_an_unsubscribe_link_for_someone_forgotten_still_answers_kindly(site):
    response = one_click(site.client, unsubscribe_path(987654), "multipart")
    assert response.status_code == 200 and "You are unsubscribed" in response.text


def test_the_unsubscribe_holds_for_the_very_next_send(site):
    ids = active_subscribers(site.app, 2, NOW)
    one_click(site.client, unsubscribe_path(ids[0]), "multipart")
    send_due(site.app, NOW)
    with transaction(site.app.engine) as session:
        got = set(
            session.scalars(
                select(m.Delivery.subscriber_id).where(m.Delivery.status == m.DeliveryStatus.SENT)
            )
        )
    assert got == {ids[1]}


def bad_tokens(sid: int) -> dict[str, str]:
    good = tokens.make_unsubscribe_token(SECRET, sid, "kap-intro")
    body, mac = good.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    return {
        "tampered mac": f"{body}.{flipped}",
        "tampered body": f"{tokens.make_unsubscribe_token(SECRET, sid + 1, 'kap-intro').split('.')[0]}.{mac}",
        "confirm token": tokens.make_confirm_token(SECRET, sid, 1, datetime.now(UTC)),
        "another key": tokens.make_unsubscribe_token("another-secret-key-0123456789", sid, "kap-intro"),
        "garbage": "not-a-token",
        "empty parts": "a.",
        "unicode": "%C3%A9t%C3%A9.x",
    }


def test_tampered_and_foreign_unsubscribe_tokens_are_refused_without_saying_why(site):
    sid = active_subscribers(site.app, 2, NOW)[0]
    bodies = set()
    for name, token in bad_tokens(sid).items():
        for response in (
            site.client.get(f"/unsubscribe/{token}"),
            site.client.post(f"/unsubscribe/{token}", data={}),
            one_click(site.client, f"/unsubscribe/{token}", "multipart"),
        ):
            assert response.status_code == 400, name
            text = main_text(response.text).lower()
            assert not any(
                word in text
                for word in ("signature", "tamper", "expired", "key", "forged", "hmac", "confirm")
            ), name
            bodies.add(response.text)
    assert len(bodies) == 1, "every bad link gets the same page"
    assert all(subscriber(site.app, i).status == m.SubscriberStatus.ACTIVE for i in (sid, sid + 1))
    assert count(site.app, m.ConsentEvent) == 2  # the two imports


# ---------------------------------------------------------------- confirm


def test_confirm_get_shows_a_button_and_only_post_confirms(site):
    issued = datetime.now(UTC)
    sid = pending(site.app, now=issued)
    path = confirm_path(sid, 1, issued)
    for _ in range(3):
        page = site.client.get(path)
        assert page.status_code == 200
    assert site.client.head(path).status_code == 200
    assert "<button" in page.text and "Confirm" in main_text(page.text)
    assert subscriber(site.app, sid).status == m.SubscriberStatus.PENDING
    assert [event.kind for event in consent_events(site.app, sid)] == [m.ConsentKind.OPT_IN]

    pressed = site.client.post(path)
    assert pressed.status_code == 200 and "You are subscribed" in pressed.text
    person = subscriber(site.app, sid)
    assert person.status == m.SubscriberStatus.ACTIVE
    confirm_event = consent_events(site.app, sid)[-1]
    assert (confirm_event.kind, confirm_event.source, confirm_event.ip, confirm_event.user_agent) == (
        m.ConsentKind.CONFIRM,
        "web",
        "127.0.0.1",
        UA,
    )
    with transaction(site.app.engine) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(m.Enrollment).where(m.Enrollment.subscriber_id == sid)
            )
            == 1
        )

    twice = site.client.post(path)
    assert twice.status_code == 200 and "You are subscribed" in twice.text
    assert [event.kind for event in consent_events(site.app, sid)] == [
        m.ConsentKind.OPT_IN,
        m.ConsentKind.CONFIRM,
    ]


def test_expired_replaced_and_foreign_confirm_tokens_get_a_friendly_page(site):
    now = datetime.now(UTC)
    sid = pending(site.app, now=now)
    subscribe(site.app, "sam@example.com", now, source="test")  # nonce 2: the first link is replaced
    cases = {
        "expired": confirm_path(sid, 2, now - timedelta(days=8)),
        "replaced": confirm_path(sid, 1, now),
        "unsubscribe token": "/confirm/" + unsubscribe_path(sid).rsplit("/", 1)[1],
        "another key": confirm_path(sid, 2, now, secret="another-secret-key-0123456789"),
        "garbage": "/confirm/abc",
    }
    signup = f"{site.web.url}/subscribe"
    for name, path in cases.items():
        for method in ("GET", "POST"):
            if name == "replaced" and method == "GET":
                continue  # the signature is fine; only the store knows it was replaced
            response = site.client.request(method, path)
            assert response.status_code == 400, (name, method)
            assert f'href="{signup}"' in response.text, name
    assert subscriber(site.app, sid).status == m.SubscriberStatus.PENDING


# ---------------------------------------------------------------- signup


def outbox(app: App, prefix: str = "confirm-") -> list[Path]:
    folder = app.config.outbox_dir
    return sorted(folder.glob(f"*-{prefix}*.eml")) if folder.exists() else []  # <time>-confirm-...


def test_the_signup_form_shows_the_versioned_consent_wording(site):
    page = site.client.get("/subscribe").text
    consent = site.app.config.consent
    assert consent.wording in page
    assert f'name="consent_version" type="hidden" value="{consent.version}"' in page
    for field in ("email", "first_name"):
        assert f'<label for="{field}">' in page and f'id="{field}"' in page
    assert 'id="timezone" name="timezone" type="hidden"' in page
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in page


def test_signup_gives_the_same_answer_for_new_pending_and_active_addresses(site):
    answers = []

    def post():
        return site.client.post(
            "/subscribe", data=form(email="Sam@Example.com", first_name="Sam", timezone="Europe/London")
        )

    answers.append(post())  # new
    assert wait_for(lambda: len(outbox(site.app)) == 1)
    answers.append(post())  # still pending: a fresh confirmation
    assert wait_for(lambda: len(outbox(site.app)) == 2)
    with transaction(site.app.engine) as session:
        person = session.scalar(select(m.Subscriber))
        person.status = m.SubscriberStatus.ACTIVE
    answers.append(post())  # already active: nothing is sent
    time.sleep(0.3)

    assert {response.status_code for response in answers} == {200}
    assert len({response.text for response in answers}) == 1
    assert "Check your inbox" in answers[0].text
    assert len(outbox(site.app)) == 2
    assert count(site.app, m.Subscriber) == 1
    opt_ins = [event for event in consent_events(site.app, person.id) if event.kind == m.ConsentKind.OPT_IN]
    assert len(opt_ins) == 2
    assert {(e.source, e.ip, e.user_agent, e.wording_version) for e in opt_ins} == {
        ("web form", "127.0.0.1", UA, "2026-11-v1")
    }
    stored = subscriber(site.app, person.id)
    assert (stored.email, stored.first_name, stored.timezone) == ("Sam@example.com", "Sam", "Europe/London")


def test_without_a_browser_time_zone_the_default_applies(site):
    site.client.post("/subscribe", data=form(email="ana@example.com"))
    assert wait_for(lambda: len(outbox(site.app)) == 1)
    with transaction(site.app.engine) as session:
        assert (
            session.scalar(select(m.Subscriber.timezone)) is None
        )  # the sending pass reads delivery.default_timezone


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"email": "not-an-address"}, "email", "Enter an email address like name@example.com."),
        ({"email": ""}, "email", "Enter an email address like name@example.com."),
        (
            {"email": "josé@example.com"},
            "email",
            "Our mail provider cannot deliver to an address with letters such as é before the @.",
        ),
        (
            {"email": "ana@example.com", "timezone": "Mars/Olympus_Mons"},
            "timezone",
            "This is not a time zone we know.",
        ),
        (
            {"email": "ana@example.com", "first_name": "Ana\nBcc: x"},
            "first_name",
            "Please fix the first name",
        ),
    ],
)
def test_a_bad_field_reshows_the_form_with_the_error_next_to_it(site, values, field, message):
    response = site.client.post("/subscribe", data=form(**values))
    assert response.status_code == 400
    page = response.text
    field_html = re.search(
        rf'<input id="{field}"[^>]*>\s*<span class="error" id="{field}-error">([^<]*)</span>', page
    )
    assert field_html, page
    assert field_html.group(1).startswith(message)
    assert 'aria-invalid="true"' in field_html.group(
        0
    ) and f'aria-describedby="{field}-error"' in field_html.group(0)
    if field == "timezone":
        assert '<label for="timezone">' in page  # shown as a visible, labelled field so it can be fixed
    time.sleep(0.2)
    assert count(site.app, m.Subscriber) == 0 and outbox(site.app) == []


def test_what_was_typed_comes_back_escaped(site):
    evil = '"><script>alert(1)</script>'
    page = site.client.post("/subscribe", data=form(email=evil, first_name=evil)).text
    assert "<script>alert" not in page
    assert "&#34;&gt;&lt;script&gt;" in page


def test_a_changed_consent_wording_must_be_read_again(site):
    response = site.client.post(
        "/subscribe", data=form(email="ana@example.com", consent_version="2025-01-v0")
    )
    assert response.status_code == 400
    assert "wording above has changed" in response.text
    time.sleep(0.2)
    assert count(site.app, m.Subscriber) == 0


def test_the_honeypot_answers_like_a_signup_and_does_nothing(site):
    normal = site.client.post("/subscribe", data=form(email="ana@example.com"))
    assert wait_for(lambda: len(outbox(site.app)) == 1)
    trapped = site.client.post(
        "/subscribe", data=form(email="bot@example.com", website="https://spam.example")
    )
    time.sleep(0.3)
    assert trapped.status_code == 200 and trapped.text == normal.text
    assert count(site.app, m.Subscriber) == 1 and len(outbox(site.app)) == 1


def test_signups_are_rate_limited_per_ip(site):
    for n in range(5):
        assert (
            site.client.post(
                "/subscribe", data=form(email=f"p{n}@example.com", website="x" if n % 2 else "")
            ).status_code
            == 200
        )
    refused = site.client.post("/subscribe", data=form(email="p9@example.com"))
    assert refused.status_code == 429
    assert "Too many attempts" in refused.text and "<html" in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 600
    assert site.client.get("/subscribe").status_code == 200  # reading the form is not limited
    # Another client address (through the trusted local proxy) has its own allowance.
    other = site.client.post(
        "/subscribe", data=form(email="q@example.com"), headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert other.status_code == 200


def test_the_client_address_comes_from_the_trusted_local_proxy(site):
    site.client.post(
        "/subscribe", data=form(email="ana@example.com"), headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert wait_for(lambda: len(outbox(site.app)) == 1)
    with transaction(site.app.engine) as session:
        assert session.scalar(select(m.ConsentEvent.ip)) == "198.51.100.7"


@pytest.mark.parametrize("forwarded", ["not an address", "fe80::1%" + "e" * 60, "999.1.1.1"])
def test_a_forwarded_for_that_is_not_an_ip_is_not_recorded(site, forwarded):
    site.client.post("/subscribe", data=form(email="ana@example.com"), headers={"X-Forwarded-For": forwarded})
    assert wait_for(lambda: len(outbox(site.app)) == 1)
    with transaction(site.app.engine) as session:
        assert session.scalar(select(m.ConsentEvent.ip)) is None


def test_oversized_form_bodies_are_refused(site):
    response = site.client.post("/subscribe", data=form(email="a@example.com", first_name="x" * 100_000))
    assert response.status_code == 413
    assert count(site.app, m.Subscriber) == 0


def big_body(size: int, chunked: bool) -> dict[str, Any]:
    data = b"List-Unsubscribe=One-Click&pad=" + b"x" * size
    if chunked:  # no Content-Length: the limit must hold for what arrives, too
        return {
            "content": iter([data[i : i + 8192] for i in range(0, len(data), 8192)]),
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        }
    return {"content": data, "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_confirm_is_refused_before_anything_is_written(site, chunked):
    issued = datetime.now(UTC)
    sid = pending(site.app, now=issued)
    response = site.client.post(confirm_path(sid, 1, issued), **big_body(70_000, chunked))
    assert response.status_code == 413
    assert "Too large" in response.text and response.headers["x-frame-options"] == "DENY"
    assert subscriber(site.app, sid).status == m.SubscriberStatus.PENDING
    assert [event.kind for event in consent_events(site.app, sid)] == [m.ConsentKind.OPT_IN]
    assert (
        site.client.post(confirm_path(sid, 1, issued)).status_code == 200
    )  # the connection and the link still work


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_unsubscribe_still_unsubscribes_and_says_so(site, chunked):
    sid = active_subscribers(site.app, 1, NOW)[0]
    response = site.client.post(unsubscribe_path(sid), **big_body(70_000, chunked))
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert subscriber(site.app, sid).status == m.SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_signup_or_webhook_is_refused_before_its_handler(site, chunked):
    assert site.client.post("/subscribe", **big_body(70_000, chunked)).status_code == 413
    body = webhook_body([sg_event("delivered", 1, pad="x" * (9 * 1024 * 1024))])
    refused = site.client.post("/webhooks/sendgrid", content=body.encode(), headers=site.signer.headers(body))
    assert refused.status_code == 413 and refused.json() == {"error": "request failed"}
    time.sleep(0.2)
    assert count(site.app, m.Subscriber) == 0 and count(site.app, m.ProviderEvent) == 0


# ---------------------------------------------------------------- the SendGrid webhook


def test_a_signed_batch_is_stored(site):
    response = post_events(site, [sg_event("delivered", 1), sg_event("open", 2)])
    assert response.status_code == 200
    assert response.json() == {"received": 2, "stored": 2, "duplicates": 0, "malformed": 0, "suppressed": 0}
    assert count(site.app, m.ProviderEvent) == 2


@pytest.mark.parametrize(
    "attack",
    [
        "replayed",
        "from the future",
        "unsigned",
        "signed with another key",
        "body changed after signing",
        "timestamp changed after signing",
    ],
)
def test_bad_webhooks_get_403_and_nothing_is_stored(site, attack):
    sid = active_subscribers(site.app, 1, NOW)[0]
    body = webhook_body(
        [sg_event("bounce", 1, email="person0@example.com", type="bounce"), sg_event("delivered", 2)]
    )
    # Well outside the five-minute window: the exact boundary is a unit test with a fixed
    # clock, while here the server's clock keeps moving between signing and checking.
    now = int(time.time())
    headers = site.signer.headers(body)
    if attack == "replayed":
        headers = site.signer.headers(body, timestamp=now - 360)
    elif attack == "from the future":
        headers = site.signer.headers(body, timestamp=now + 360)
    elif attack == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif attack == "signed with another key":
        headers = WebhookSigner().headers(body)
    elif attack == "body changed after signing":
        body = body.replace("delivered", "processed")
    elif attack == "timestamp changed after signing":
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = str(now - 1)
    response = site.client.post("/webhooks/sendgrid", content=body.encode(), headers=headers)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden"}
    assert count(site.app, m.ProviderEvent) == 0
    assert subscriber(site.app, sid).status == m.SubscriberStatus.ACTIVE


@pytest.mark.parametrize("stamp", [b"999999999999", b"253402300800", "²".encode("latin-1"), b"-5", b"1e9"])
def test_an_absurd_signature_timestamp_gets_403_not_500(site, stamp):
    body = webhook_body([sg_event("delivered", 1)])
    headers = {**site.signer.headers(body), "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    response = site.client.post("/webhooks/sendgrid", content=body.encode(), headers=headers)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden"}
    assert count(site.app, m.ProviderEvent) == 0


def test_without_a_public_key_every_webhook_is_refused_and_the_owner_is_told(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="nurture")
    signer = WebhookSigner()
    with live_web(tmp_path) as web, web.client() as client:
        body = webhook_body([sg_event("delivered", 1)])
        response = client.post("/webhooks/sendgrid", content=body.encode(), headers=signer.headers(body))
        assert response.status_code == 403
        assert count(web.app, m.ProviderEvent) == 0
    assert "NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY is not set" in caplog.text


def test_a_signed_body_that_is_not_a_list_is_a_bad_request(site):
    body = json.dumps({"event": "open"})
    response = site.client.post(
        "/webhooks/sendgrid", content=body.encode(), headers=site.signer.headers(body)
    )
    assert response.status_code == 400
    assert count(site.app, m.ProviderEvent) == 0


def test_duplicate_events_are_stored_once(site):
    events = [sg_event("delivered", 1), sg_event("open", 2), sg_event("open", 2)]
    first = post_events(site, events).json()
    assert (first["stored"], first["duplicates"]) == (2, 1)
    second = post_events(site, events[:2]).json()  # SendGrid's retry of the same batch
    assert (second["stored"], second["duplicates"]) == (0, 2)
    missing_ids = [{k: v for k, v in sg_event("dropped", 3, reason="Invalid").items() if k != "sg_event_id"}]
    assert post_events(site, missing_ids).json()["stored"] == 1
    assert post_events(site, missing_ids).json()["stored"] == 0
    assert count(site.app, m.ProviderEvent) == 3


def test_one_malformed_event_does_not_lose_the_batch(site):
    events = [
        sg_event("delivered", 1),
        "not an object",
        {"timestamp": 1},
        {"event": "open", "timestamp": "soon"},
        sg_event("open", 2),
    ]
    response = post_events(site, events)
    assert response.status_code == 200
    assert response.json() == {"received": 5, "stored": 2, "duplicates": 0, "malformed": 3, "suppressed": 0}


def test_a_lone_surrogate_or_deep_nesting_costs_only_that_event(site):
    broken = {**sg_event("dropped", 3), "reason": "\ud800"}
    body = (
        "["
        + ",".join([json.dumps(sg_event("delivered", 1)), json.dumps(broken), "[" * 100_000 + "]" * 100_000])
        + "]"
    )
    response = site.client.post(
        "/webhooks/sendgrid", content=body.encode(), headers=site.signer.headers(body)
    )
    assert response.status_code == 200
    assert response.json() == {"received": 3, "stored": 1, "duplicates": 0, "malformed": 2, "suppressed": 0}


def message_keys(app):
    """Each subscriber's delivery key and address, as SendGrid echoes them in events."""
    with transaction(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.subscriber_id, m.Delivery.message_key, m.Subscriber.email).join(
                m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id
            )
        ).all()
    return {row.subscriber_id: row.message_key for row in rows}, {
        row.subscriber_id: row.email for row in rows
    }


def test_a_bounce_suppresses_before_the_next_send_due(site):
    ids = active_subscribers(site.app, 3, NOW)
    first = send_due(site.app, NOW)
    assert first.sent == 3
    with transaction(site.app.engine) as session:
        deliveries = dict(session.execute(select(m.Delivery.subscriber_id, m.Delivery.id)).all())
    keys, emails = message_keys(site.app)
    events = [
        sg_event("delivered", 1, delivery_id=keys[ids[0]], email=emails[ids[0]]),
        sg_event(
            "bounce",
            2,
            delivery_id=keys[ids[0]],
            email=emails[ids[0]],
            type="bounce",
            status="5.1.1",
            reason="550 5.1.1 <person0@example.com> unknown",
        ),
        sg_event("spamreport", 3, delivery_id=keys[ids[1]], email=emails[ids[1]]),
    ]
    assert post_events(site, events).json()["suppressed"] == 2

    later = NOW + timedelta(days=3)  # step 2 is due
    send_due(site.app, later)
    with transaction(site.app.engine) as session:
        step_two = set(session.scalars(select(m.Delivery.subscriber_id).where(m.Delivery.step == 2)))
        bounce = session.scalar(select(m.ProviderEvent).where(m.ProviderEvent.kind == "bounced_hard"))
    assert step_two == {ids[2]}
    assert (subscriber(site.app, ids[0]).status, subscriber(site.app, ids[1]).status) == (
        m.SubscriberStatus.BOUNCED,
        m.SubscriberStatus.COMPLAINED,
    )
    assert bounce.delivery_id == deliveries[ids[0]] and (bounce.stream, bounce.step) == ("kap-intro", 1)
    assert "person0" not in bounce.detail
    assert [e.kind for e in consent_events(site.app, ids[0])] == [m.ConsentKind.IMPORT, m.ConsentKind.BOUNCE]


def test_a_signed_batch_of_1000_events_is_processed(site):
    ids = active_subscribers(site.app, 200, NOW)
    send_due(site.app, NOW)
    keys, emails = message_keys(site.app)
    kinds = ["processed", "delivered", "open", "click"]
    events = []
    for n in range(1000):
        sid = ids[n % 200]
        if n < 20:
            events.append(
                sg_event(
                    "bounce",
                    n,
                    delivery_id=keys[sid],
                    email=emails[sid],
                    type="bounce",
                    reason="550 unknown user",
                )
            )
        else:
            events.append(
                sg_event(
                    kinds[n % 4],
                    n,
                    delivery_id=keys[sid],
                    email=emails[sid],
                    url="https://www.example.com/articles/a",
                )
            )
    body = webhook_body(events)
    started = time.perf_counter()
    response = site.client.post(
        "/webhooks/sendgrid", content=body.encode(), headers=site.signer.headers(body)
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json() == {
        "received": 1000,
        "stored": 1000,
        "duplicates": 0,
        "malformed": 0,
        "suppressed": 20,
    }
    with transaction(site.app.engine) as session:
        by_kind = dict(
            session.execute(select(m.ProviderEvent.kind, func.count()).group_by(m.ProviderEvent.kind)).all()
        )
        untied = session.scalar(
            select(func.count()).select_from(m.ProviderEvent).where(m.ProviderEvent.delivery_id.is_(None))
        )
        bounced = session.scalar(
            select(func.count())
            .select_from(m.Subscriber)
            .where(m.Subscriber.status == m.SubscriberStatus.BOUNCED)
        )
    assert by_kind == {"bounced_hard": 20, "accepted": 245, "delivered": 245, "opened": 245, "clicked": 245}
    assert (
        untied == 490 and bounced == 20
    )  # delivery.tracking is off: the 490 opens and clicks are tied to no delivery
    print(f"1,000 signed events over HTTP: {elapsed * 1000:.0f} ms (timed in benchmarks/bench_webhook.py)")


# ---------------------------------------------------------------- logs


@pytest.fixture
def server_logs(caplog):
    """caplog, also fed by uvicorn's own loggers (which do not propagate), access log included."""
    caplog.set_level(logging.DEBUG, logger="nurture")
    attached = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.access")]
    for logger in attached:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in attached:
        logger.removeHandler(caplog.handler)


def test_no_address_name_or_token_reaches_the_logs(site, server_logs):
    email, name = "Private.Person@example.org", "Zebedee"
    site.client.post("/subscribe", data=form(email=email, first_name=name, timezone="Europe/Paris"))
    confirmation = wait_for(lambda: outbox(site.app))
    assert confirmation
    raw = confirmation[0].read_text()
    token = re.search(r"/confirm/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", raw).group(1)
    site.client.get(f"/confirm/{token}")
    site.client.post(f"/confirm/{token}")
    with transaction(site.app.engine) as session:
        sid = session.scalar(select(m.Subscriber.id))
    unsubscribe_token = tokens.make_unsubscribe_token(SECRET, sid, "kap-intro")
    site.client.get(f"/unsubscribe/{unsubscribe_token}")
    one_click(site.client, f"/unsubscribe/{unsubscribe_token}", "multipart")
    site.client.get(f"/unsubscribe/{unsubscribe_token}x")  # a bad one
    post_events(
        site,
        [sg_event("bounce", 1, email=email, type="bounce", reason=f"550 <{email}> unknown"), "malformed"],
    )
    site.client.post("/webhooks/sendgrid", content=b"[]")  # refused
    site.client.post("/subscribe", data=form(email=f"{email}x", website="bot"))

    access = [record for record in server_logs.records if record.name == "uvicorn.access"]
    assert len(access) >= 9
    text = server_logs.text + "\n".join(record.getMessage() for record in server_logs.records)
    assert "/confirm/{token}" in text and "/unsubscribe/{token}" in text
    assert "sendgrid webhook: 2 received, 1 stored" in text
    assert "sendgrid webhook refused (403)" in text
    for secret in (
        email,
        email.lower(),
        name,
        token,
        unsubscribe_token,
        token.split(".")[0],
        unsubscribe_token.split(".")[0],
    ):
        assert secret not in text, secret


def access_lines(server_logs) -> list[str]:
    return [record.getMessage() for record in server_logs.records if record.name == "uvicorn.access"]


def test_access_lines_name_the_route_never_the_path_or_query(site, server_logs):
    sid = active_subscribers(site.app, 1, NOW)[0]
    token = unsubscribe_path(sid).rsplit("/", 1)[1]
    issued = datetime.now(UTC)
    confirm_token = confirm_path(pending(site.app, "ana@example.com", issued), 1, issued).rsplit("/", 1)[1]
    requests = [
        ("GET", "/subscribe?first_name=Zebedee&email=zeb%40example.org", 200, "/subscribe"),
        ("GET", f"/unsubscribe/{token}", 200, "/unsubscribe/{token}"),
        ("GET", f"/confirm/{confirm_token}?utm=Zebedee", 200, "/confirm/{token}"),
        ("GET", f"/UNSUBSCRIBE/{token}", 404, "<unknown path>"),
        ("GET", f"/CONFIRM/{confirm_token}", 404, "<unknown path>"),
        ("GET", f"/unsubscribe//{token}", 404, "<unknown path>"),
        ("GET", f"/unsubscribe/{token[:8]}%2F{token[8:]}", 404, "<unknown path>"),
        ("POST", f"/Unsubscribe/{token}", 404, "<unknown path>"),
        ("GET", "/healthz?zebedee@example.org", 200, "/healthz"),
    ]
    for method, path, status, _ in requests:
        assert site.client.request(method, path).status_code == status, path
    lines = access_lines(server_logs)
    assert len(lines) == len(requests)
    for line, (method, _, status, template) in zip(lines, requests, strict=True):
        assert line == f'- - "{method} {template} HTTP/1.1" {status}', line
    # As uvicorn prints them (its formatter unpacks the same five arguments).
    formatter = AccessFormatter(
        fmt='%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    printed = [formatter.format(record) for record in server_logs.records if record.name == "uvicorn.access"]
    assert printed[1] == 'INFO:     - - "GET /unsubscribe/{token} HTTP/1.1" 200 OK'
    everything = "\n".join(lines + printed) + server_logs.text
    for secret in (
        "Zebedee",
        "zeb",
        token,
        token.split(".")[1],
        confirm_token,
        confirm_token.split(".")[1],
        "127.0.0.1",
    ):
        assert secret not in everything, secret


def test_routes_added_later_are_known_to_the_access_log():
    async def page(request):  # pragma: no cover - never called
        raise AssertionError

    routes = [Route("/a/{x}", page), Mount("/console", routes=[Route("/people/{pid:int}", page)])]
    assert route_template("/a/secret", routes) == "/a/{x}"
    assert route_template("/console/people/12", routes) == "/console/people/{pid:int}"
    assert route_template("/console/people/x", routes) == UNKNOWN_PATH
    assert route_template("/A/secret", routes) == UNKNOWN_PATH


def test_the_redacting_filter_covers_tracebacks(site):
    from nurture.web.logs import redact_filter

    try:
        raise ValueError("lookup of /unsubscribe/abc.def for a@example.com failed")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "failed %s", ("/confirm/xyz.uvw",), sys.exc_info()
        )
    assert redact_filter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "failed /confirm/…" in formatted
    assert "abc.def" not in formatted and "a@example.com" not in formatted and "xyz" not in formatted


# ---------------------------------------------------------------- the command


def test_serve_has_help_with_an_example_and_uses_the_configured_address(tmp_path, monkeypatch):
    from nurture.cli.main import cli
    from tests.support.factories import write_project

    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "nurture serve" in result.output

    seen: dict[str, Any] = {}
    monkeypatch.setattr("nurture.web.serve", lambda app, host, port: seen.update(host=host, port=port))
    config = write_project(tmp_path, {"web.port": 8123})
    env = {"NURTURE_CONFIG": str(config), "NURTURE_SECRET_KEY": SECRET}
    assert CliRunner().invoke(cli, ["serve"], env=env).exit_code == 0
    assert seen == {"host": "127.0.0.1", "port": 8123}
    assert CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "9000"], env=env).exit_code == 0
    assert seen == {"host": "0.0.0.0", "port": 9000}
