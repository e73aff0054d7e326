"""The preference center against a real uvicorn server: GET shows, POST acts with a form
token, every change is in the consent history (and the export), links are as strict as
unsubscribe links, nothing tells who is on the list, and every request is rate-limited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from nurture import links, tokens
from nurture.app import App
from nurture.audience import people
from nurture.audience.signup import subscribe
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import SECRET, active_subscribers, at
from tests.support.spellings import spellings
from tests.support.webserver import LiveWeb, live_web

NOW = at("2026-12-01 15:00")  # 10:00 in New York
OLD_KEY = "an-older-secret-key-0123456789"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def web(tmp_path: Path, clock: Clock) -> Iterator[LiveWeb]:
    environ = {"NURTURE_PREVIOUS_SECRET_KEYS": OLD_KEY}
    with live_web(tmp_path, environ=environ, app_options={"clock": clock}) as served:
        yield served


@pytest.fixture
def client(web: LiveWeb) -> Iterator[httpx.Client]:
    with web.client() as http:
        yield http


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def form_token(page: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    assert found, "every form carries its token"
    return found.group(1)


def ledger(app: App, subscriber_id: int) -> list[m.ConsentEvent]:
    with transaction(app.engine) as session:
        return list(
            session.scalars(
                select(m.ConsentEvent)
                .where(m.ConsentEvent.subscriber_id == subscriber_id)
                .order_by(m.ConsentEvent.id)
            )
        )


def person(app: App, subscriber_id: int) -> m.Subscriber:
    with transaction(app.engine) as session:
        found = session.get(m.Subscriber, subscriber_id)
        assert found is not None
        session.expunge(found)
        return found


def test_the_footer_link_of_a_sent_email_opens_the_readers_page(web: LiveWeb, client: httpx.Client) -> None:
    app = web.app
    [reader] = active_subscribers(app, 1, NOW - timedelta(days=1))
    send_due(app, NOW)
    [eml] = app.config.outbox_dir.glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=default_policy)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    url = re.search(r"Or choose what you get \(fewer emails, only some of them, or a pause\): (\S+)", text)
    assert url, text
    assert f'href="{url.group(1)}"' in html, "the HTML footer links the same page"
    page = client.get(path_of(url.group(1)))
    assert page.status_code == 200
    assert "Your email choices" in page.text and "p…@example.com" in page.text
    assert "person0@example.com" not in page.text, "the page does not spell out the address"
    assert "set-cookie" not in page.headers and "<script" not in page.text
    assert person(app, reader).preferences_seen_at == NOW, "a visit is a sign of life"


def test_saving_choices_records_each_change_without_an_ip_and_the_export_has_them(
    web: LiveWeb, client: httpx.Client
) -> None:
    app = web.app
    [reader] = active_subscribers(app, 1, NOW - timedelta(days=1))
    url = path_of(links.preferences_url(app.config, reader))
    page = client.get(url)
    answer = client.post(
        url,
        data={
            "form_token": form_token(page.text),
            "newsletter": "on",  # series unticked: off
            "frequency": "weekly",
            "first_name": "Robin",
            "timezone": "Europe/Lisbon",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"{url}?done=saved"
    assert "Saved" in client.get(answer.headers["location"]).text
    stored = person(app, reader)
    assert (stored.series_off, stored.newsletter_off, stored.frequency) == (True, False, "weekly")
    assert (stored.first_name, stored.timezone) == ("Robin", "Europe/Lisbon")
    changes = [event for event in ledger(app, reader) if event.kind == m.ConsentKind.PREFERENCE]
    assert [event.detail for event in changes] == [
        "series: off",
        "how often: at most one email a week",
        "first name changed",
        "time zone: Europe/Lisbon",
    ]
    assert all(e.source == "preference center" and e.ip is None and e.user_agent is None for e in changes)
    assert all(e.occurred_at == NOW for e in changes)
    exported = people.export(app, "person0@example.com")
    assert [e["detail"] for e in exported["consent_events"] if e["kind"] == "preference"] == [
        e.detail for e in changes
    ]
    assert exported["subscriber"]["preferences"] == {
        "series": False,
        "newsletter": True,
        "frequency": "weekly",
        "paused_until": None,
    }
    # The same choices again: nothing new in the history.
    before = len(ledger(app, reader))
    again = client.post(
        url,
        data={
            "form_token": form_token(client.get(url).text),
            "newsletter": "on",
            "frequency": "weekly",
            "first_name": "Robin",
            "timezone": "Europe/Lisbon",
        },
    )
    assert again.headers["location"].endswith("?done=unchanged")
    assert len(ledger(app, reader)) == before


def test_a_bad_name_or_zone_changes_nothing_and_says_what_to_fix(web: LiveWeb, client: httpx.Client) -> None:
    app = web.app
    [reader] = active_subscribers(app, 1, NOW)
    url = path_of(links.preferences_url(app.config, reader))
    token = form_token(client.get(url).text)
    for field, value, words in (
        ("first_name", "Sam\r\nBcc: x@example.com", "Please fix the first name"),
        ("timezone", "Mars/Olympus", "This is not a time zone we know"),
    ):
        data = {"form_token": token, "series": "on", "newsletter": "on", "frequency": "daily", field: value}
        answer = client.post(url, data=data)
        assert answer.status_code == 400 and words in answer.text
    before = len(ledger(app, reader))
    assert person(app, reader).series_off is False and len(ledger(app, reader)) == before


def test_forms_need_their_token_and_this_sites_origin(
    web: LiveWeb, client: httpx.Client, clock: Clock
) -> None:
    app = web.app
    first, second = active_subscribers(app, 2, NOW)
    url = path_of(links.preferences_url(app.config, first))
    token = form_token(client.get(url).text)
    other_page = form_token(client.get(path_of(links.preferences_url(app.config, second))).text)
    data = {"series": "on", "frequency": "daily"}  # newsletter off
    refused = [
        client.post(url, data=data),
        client.post(url, data={**data, "form_token": other_page}),
        client.post(url, data={**data, "form_token": token}, headers={"Origin": "https://evil.example"}),
        client.post(f"{url}/pause", data={"days": "30", "form_token": other_page}),
        client.post(f"{url}/unsubscribe", data={}),
    ]
    assert [answer.status_code for answer in refused] == [403] * 5
    clock.now = NOW + timedelta(hours=13)
    assert client.post(url, data={**data, "form_token": token}).status_code == 403, "a stale page"
    stored = person(app, first)
    assert (stored.newsletter_off, stored.paused_until, stored.status) == (False, None, "active")
    clock.now = NOW
    # Browsers send Origin: null under the page's no-referrer policy: the form token decides.
    ok = client.post(url, data={**data, "form_token": token}, headers={"Origin": "null"})
    assert ok.status_code == 303 and person(app, first).newsletter_off is True


def test_changed_foreign_and_forgotten_links_get_one_answer_that_tells_nothing(
    web: LiveWeb, client: httpx.Client
) -> None:
    app = web.app
    kept, forgotten = active_subscribers(app, 2, NOW)
    token = tokens.make_preferences_token(SECRET, kept)
    gone = tokens.make_preferences_token(SECRET, forgotten)
    people.forget(app, "person1@example.com", NOW)
    bad = [
        *spellings(token),
        tokens.make_unsubscribe_token(SECRET, kept, "kap-intro"),
        tokens.make_preferences_token("someone-elses-key-0123456789", kept),
        gone,
        token[:-2],
    ]
    # A "/" in a spelling makes another path (404, no handler at all): the rest reach the page.
    answers = [client.get(f"/preferences/{quote(variant, safe='')}") for variant in bad if "/" not in variant]
    gone_form = tokens.make_preferences_form_token(SECRET, gone, NOW)
    answers += [
        client.post(f"/preferences/{gone}/pause", data={"days": "30", "form_token": gone_form}),
        client.post(f"/preferences/{gone}", data={"series": "on", "form_token": gone_form}),
    ]
    assert {answer.status_code for answer in answers} == {400}
    assert len({answer.text for answer in answers}) == 1, "the same page, whatever was wrong"
    assert "This link does not work" in answers[0].text
    assert client.get(f"/preferences/{token}").status_code == 200


def test_a_link_signed_before_a_key_rotation_still_works(web: LiveWeb, client: httpx.Client) -> None:
    [reader] = active_subscribers(web.app, 1, NOW)
    old = tokens.make_preferences_token(OLD_KEY, reader)
    page = client.get(f"/preferences/{old}")
    assert page.status_code == 200
    answer = client.post(
        f"/preferences/{old}/pause", data={"days": "60", "form_token": form_token(page.text)}
    )
    assert answer.status_code == 303
    assert person(web.app, reader).paused_until == NOW + timedelta(days=60)


def test_pause_resume_and_leave(web: LiveWeb, client: httpx.Client) -> None:
    app = web.app
    [reader] = active_subscribers(app, 1, NOW)
    url = path_of(links.preferences_url(app.config, reader))
    answer = client.post(f"{url}/pause", data={"days": "90", "form_token": form_token(client.get(url).text)})
    assert answer.headers["location"] == f"{url}?done=paused"
    page = client.get(answer.headers["location"]).text
    assert "Your emails are paused" in page and "01 March 2027" in page
    bad_length = client.post(f"{url}/pause", data={"days": "7", "form_token": form_token(page)})
    assert bad_length.status_code == 303 and person(app, reader).paused_until == NOW + timedelta(days=90)
    client.post(f"{url}/resume", data={"form_token": form_token(page)})
    assert person(app, reader).paused_until is None
    left = client.post(f"{url}/unsubscribe", data={"form_token": form_token(page)})
    assert left.status_code == 200 and "You are unsubscribed" in left.text
    assert person(app, reader).status == m.SubscriberStatus.UNSUBSCRIBED
    assert [(e.kind, e.detail) for e in ledger(app, reader)][-3:] == [
        ("preference", "paused for 90 days, until 2027-03-01 15:00 UTC"),
        ("preference", "pause ended: emails start again"),
        ("unsubscribe", "from the preference center"),
    ]
    after = client.get(url)
    assert after.status_code == 200 and "You are not on the list" in after.text
    assert client.post(f"{url}/pause", data={"days": "30", "form_token": form_token(page)}).status_code == 200


def test_a_test_copys_link_changes_nothing(web: LiveWeb, client: httpx.Client) -> None:
    url = path_of(links.test_copy_preferences_url(web.app.config))
    assert "This is a test copy" in client.get(url).text
    assert "This is a test copy" in client.post(f"{url}/unsubscribe", data={}).text


def test_every_request_counts_against_the_clients_limit(tmp_path: Path, clock: Clock) -> None:
    options = {"clock": clock, "preference_limit": (3, 600.0)}
    with live_web(tmp_path, app_options=options) as served, served.client() as http:
        [reader] = active_subscribers(served.app, 1, NOW)
        url = path_of(links.preferences_url(served.app.config, reader))
        answers = [http.get(url), http.get("/preferences/not-a-token"), http.get(url), http.get(url)]
        assert [a.status_code for a in answers] == [200, 400, 200, 429]
        assert answers[-1].headers["retry-after"] == "600"
        # The signup form's limit is its own.
        assert http.get("/subscribe").status_code == 200


def test_the_confirmation_page_links_to_the_readers_choices(web: LiveWeb, client: httpx.Client) -> None:
    app = web.app
    result = subscribe(app, "new@example.com", NOW, first_name="Nia")
    [eml] = app.config.outbox_dir.glob("*.eml")
    confirm = re.search(r"(http://\S+/confirm/\S+)", eml.read_text())
    assert confirm
    answer = client.post(path_of(confirm.group(1)))
    assert "You are subscribed" in answer.text
    link = re.search(r'href="([^"]*/preferences/[^"]+)"', answer.text)
    assert link and link.group(1) == links.preferences_url(app.config, result.subscriber_id)
    assert client.get(path_of(link.group(1))).status_code == 200
