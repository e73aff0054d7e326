"""Repeated soft bounces suppress a person as bounced (nurture.audience.soft_bounces): counted per
email within `bounces.soft_window`, never from a retried event alone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.provider_events import WebhookReport, store_events
from nurture.providers.base import NormalizedEvent
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import process_sendgrid_events
from tests.support.console import console
from tests.support.factories import active_subscribers, at
from tests.support.webserver import sg_event

NOW = at("2026-12-01 15:00")


def emails_to(app: App, subscriber_id: int, count: int) -> list[int]:
    """`count` sent emails (steps 1..count of kap-intro) to one person; their delivery ids."""
    ids = []
    with transaction(app.engine) as session:
        for step in range(1, count + 1):
            row = m.Delivery(
                subscriber_id=subscriber_id,
                stream="kap-intro",
                step=step,
                step_key=f"s{step}",
                status=m.DeliveryStatus.SENT,
                claimed_at=NOW - timedelta(days=20),
                finished_at=NOW - timedelta(days=20),
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids


def blocked(
    n: int, delivery_id: int, when: datetime, email: str = "person0@example.com"
) -> dict[str, object]:
    return sg_event(
        "bounce",
        n,
        delivery_id=delivery_id,
        email=email,
        type="blocked",
        reason="452 mailbox full",
        timestamp=int(when.timestamp()),
    )


def person(app: App, subscriber_id: int) -> tuple[str, list[tuple[str, str | None]]]:
    with transaction(app.engine) as session:
        status = session.get(m.Subscriber, subscriber_id).status
        consent = session.execute(
            select(m.ConsentEvent.kind, m.ConsentEvent.detail).where(
                m.ConsentEvent.subscriber_id == subscriber_id, m.ConsentEvent.kind == m.ConsentKind.BOUNCE
            )
        ).all()
    return status, [tuple(row) for row in consent]


def test_three_emails_refused_within_the_window_suppress_as_a_bounce(app: App) -> None:
    [sid] = active_subscribers(app, 1, NOW)
    d1, d2, d3 = emails_to(app, sid, 3)
    process_sendgrid_events(
        app, [blocked(1, d1, NOW - timedelta(days=10)), blocked(2, d2, NOW - timedelta(days=5))], NOW
    )
    assert person(app, sid) == (m.SubscriberStatus.ACTIVE, [])  # two are not enough

    report = process_sendgrid_events(app, [blocked(3, d3, NOW - timedelta(hours=1))], NOW)
    assert report.suppressed == 1
    status, consent = person(app, sid)
    assert status == m.SubscriberStatus.BOUNCED
    assert consent == [(m.ConsentKind.BOUNCE, "3 emails soft-bounced within 15 days")]


def test_one_email_reported_many_times_counts_once(app: App) -> None:
    [sid] = active_subscribers(app, 1, NOW)
    d1, d2 = emails_to(app, sid, 2)
    events = [blocked(n, d1, NOW - timedelta(days=1, minutes=n)) for n in range(1, 6)] + [blocked(9, d2, NOW)]
    assert process_sendgrid_events(app, events, NOW).suppressed == 0
    assert person(app, sid)[0] == m.SubscriberStatus.ACTIVE


def test_refusals_spread_wider_than_the_window_do_not_count(app: App) -> None:
    [sid] = active_subscribers(app, 1, NOW)
    d1, d2, d3 = emails_to(app, sid, 3)
    events = [
        blocked(1, d1, NOW - timedelta(days=40)),
        blocked(2, d2, NOW - timedelta(days=16)),
        blocked(3, d3, NOW - timedelta(days=1)),
    ]
    assert process_sendgrid_events(app, events, NOW).suppressed == 0
    assert person(app, sid)[0] == m.SubscriberStatus.ACTIVE


@pytest.mark.parametrize("app_settings", [{"bounces.soft_limit": 1, "bounces.soft_window": "30d"}])
def test_the_limit_and_window_are_settings(app: App) -> None:
    [sid, other] = active_subscribers(app, 2, NOW)
    [d1] = emails_to(app, sid, 1)
    assert process_sendgrid_events(app, [blocked(1, d1, NOW - timedelta(days=25))], NOW).suppressed == 1
    assert person(app, sid) == (
        m.SubscriberStatus.BOUNCED,
        [(m.ConsentKind.BOUNCE, "1 email soft-bounced within 30 days")],
    )
    assert person(app, other)[0] == m.SubscriberStatus.ACTIVE  # only the person the event names


def test_the_persons_page_shows_each_bounce_with_the_providers_reason(tmp_path) -> None:
    with console(tmp_path, https=True) as site:
        client = site.login()
        [sid] = active_subscribers(site.app, 1, site.clock.now)
        d1, d2, d3 = emails_to(site.app, sid, 3)
        assert "No reports from the email provider yet" in client.get(f"/console/subscribers/{sid}").text
        when = site.clock.now - timedelta(hours=1)
        process_sendgrid_events(
            site.app, [blocked(n, d, when) for n, d in enumerate((d1, d2, d3), 1)], site.clock.now
        )
        page = client.get(f"/console/subscribers/{sid}").text
        assert page.count("452 mailbox full") == 3
        assert "soft-bounced within 15 days" in page  # the consent record says why mail stopped


def test_undetermined_bounces_from_any_provider_count_as_soft(app: App) -> None:
    """What SES reports as an Undetermined bounce (or a DSN without a clear class) is neutral
    `bounced_undetermined`: it counts toward the soft limit like a soft bounce."""
    [sid] = active_subscribers(app, 1, NOW)
    deliveries = emails_to(app, sid, 3)
    events = [
        NormalizedEvent(
            provider_event_id=f"ses:undetermined-{n}",
            kind=m.EventKind.BOUNCED_UNDETERMINED,
            raw_event="Bounce",
            delivery_ref=str(delivery_id),
            stream=None,
            step=None,
            occurred_at=NOW - timedelta(days=n),
            detail="bounceType=Undetermined",
            suppress=None,
            email="person0@example.com",
        )
        for n, delivery_id in enumerate(deliveries, start=1)
    ]
    report = store_events(app, WebhookReport("ses"), events, NOW)
    assert report.suppressed == 1
    assert person(app, sid) == (
        m.SubscriberStatus.BOUNCED,
        [(m.ConsentKind.BOUNCE, "3 emails soft-bounced within 15 days")],
    )
