"""Storing a webhook batch (nurture.provider_events): each event once, tied to its delivery, and
the subscriber suppressed by a bounce or complaint; on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from nurture.errors import WebhookRejected
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import handle_sendgrid, process_sendgrid_events
from tests.support.factories import active_subscribers, at, make_app
from tests.support.webserver import WebhookSigner, sg_event, webhook_body

# ---------------------------------------------------------------- storing a batch


NOW = at("2026-12-01 15:00")


def stored(app):
    with transaction(app.engine) as session:
        return session.scalars(select(m.ProviderEvent).order_by(m.ProviderEvent.id)).all()


def statuses(app):
    with transaction(app.engine) as session:
        return dict(session.execute(select(m.Subscriber.id, m.Subscriber.status)).all())


def sent_deliveries(app, ids, now=NOW):
    """One sent delivery per subscriber (step 1 of kap-intro), by subscriber id."""
    rows = [
        {
            "subscriber_id": sid,
            "stream": "kap-intro",
            "step": 1,
            "status": m.DeliveryStatus.SENT,
            "claimed_at": now,
            "finished_at": now,
        }
        for sid in ids
    ]
    with transaction(app.engine) as session:
        result = session.execute(
            m.Delivery.__table__.insert().returning(
                m.Delivery.id, m.Delivery.subscriber_id, sort_by_parameter_order=True
            ),
            rows,
        )
        return {subscriber_id: delivery_id for delivery_id, subscriber_id in result}


def test_a_batch_is_stored_once_and_tied_to_deliveries(app):
    ids = active_subscribers(app, 2, NOW)
    deliveries = sent_deliveries(app, ids)
    events = [
        sg_event(
            "delivered", 1, delivery_id=deliveries[ids[0]], email=f"person{0}@example.com", response="250 OK"
        ),
        sg_event("open", 2, delivery_id=deliveries[ids[1]], email=f"person{1}@example.com"),
        sg_event(
            "click", 3, delivery_id=999_999, url="https://www.example.com/articles/x"
        ),  # no such delivery
        sg_event("processed", 4, delivery_id=None),
    ]
    report = process_sendgrid_events(app, events, NOW)
    assert report.as_dict() == {"received": 4, "stored": 4, "duplicates": 0, "malformed": 0, "suppressed": 0}
    rows = {row.provider_event_id: row for row in stored(app)}
    assert rows["evt-delivered-1"].delivery_id == deliveries[ids[0]]
    assert rows["evt-delivered-1"].kind == "delivered" and rows["evt-delivered-1"].provider == "sendgrid"
    # delivery.tracking is off by default: an open is kept for its email, tied to no one.
    assert rows["evt-open-2"].delivery_id is None and (
        rows["evt-open-2"].stream,
        rows["evt-open-2"].step,
    ) == ("kap-intro", 1)
    assert (
        rows["evt-click-3"].delivery_id is None
        and rows["evt-click-3"].stream == "kap-intro"
        and rows["evt-click-3"].step == 1
    )
    assert rows["evt-processed-4"].received_at == NOW

    again = process_sendgrid_events(app, events + [events[0]], NOW)
    assert again.as_dict() == {"received": 5, "stored": 0, "duplicates": 5, "malformed": 0, "suppressed": 0}
    assert len(stored(app)) == 4


def test_one_malformed_event_does_not_stop_the_others(app):
    events = [sg_event("delivered", 1), "garbage", {"event": "open"}, {"timestamp": 1}, sg_event("open", 2)]
    report = process_sendgrid_events(app, events, NOW)
    assert (report.received, report.stored, report.malformed) == (5, 2, 3)


def test_suppressing_events_stop_the_subscriber_through_the_delivery_or_the_address(app):
    ids = active_subscribers(app, 6, NOW)
    deliveries = sent_deliveries(app, ids)
    events = [
        sg_event(
            "bounce",
            1,
            delivery_id=deliveries[ids[0]],
            email=f"person{0}@example.com",
            type="bounce",
            reason="550 unknown user",
        ),
        sg_event("spamreport", 2, delivery_id=deliveries[ids[1]], email=f"person{1}@example.com"),
        sg_event(
            "group_unsubscribe",
            3,
            delivery_id=deliveries[ids[2]],
            email=f"person{2}@example.com",
            asm_group_id=1,
        ),
        # No delivery id: found through the address (case-insensitively); the address is not stored.
        sg_event("dropped", 4, delivery_id=None, email="PERSON3@example.com", reason="Bounced Address"),
        sg_event(
            "bounce",
            5,
            delivery_id=deliveries[ids[4]],
            email=f"person{4}@example.com",
            type="blocked",
            reason="blocked",
        ),  # blocked: stats only
        sg_event(
            "dropped",
            6,
            delivery_id=deliveries[ids[5]],
            email=f"person{5}@example.com",
            reason="Invalid SMTPAPI header",
        ),  # our problem, not theirs
    ]
    report = process_sendgrid_events(app, events, NOW)
    assert report.suppressed == 4
    assert [statuses(app)[sid] for sid in ids] == [
        m.SubscriberStatus.BOUNCED,
        m.SubscriberStatus.COMPLAINED,
        m.SubscriberStatus.UNSUBSCRIBED,
        m.SubscriberStatus.BOUNCED,
        m.SubscriberStatus.ACTIVE,
        m.SubscriberStatus.ACTIVE,
    ]
    with transaction(app.engine) as session:
        consent = session.execute(
            select(m.ConsentEvent.subscriber_id, m.ConsentEvent.kind, m.ConsentEvent.source).where(
                m.ConsentEvent.kind != m.ConsentKind.IMPORT
            )
        ).all()
        enrollments = dict(session.execute(select(m.Enrollment.subscriber_id, m.Enrollment.status)).all())
    assert sorted(consent) == sorted(
        [
            (ids[0], m.ConsentKind.BOUNCE, "sendgrid webhook"),
            (ids[1], m.ConsentKind.COMPLAINT, "sendgrid webhook"),
            (ids[2], m.ConsentKind.UNSUBSCRIBE, "sendgrid webhook"),
            (ids[3], m.ConsentKind.BOUNCE, "sendgrid webhook"),
        ]
    )
    assert [enrollments[sid] for sid in ids] == [m.EnrollmentStatus.STOPPED] * 4 + [
        m.EnrollmentStatus.ACTIVE
    ] * 2
    for row in stored(app):
        assert "@" not in " ".join(
            str(value) for value in (row.provider_event_id, row.detail, row.stream, row.raw_event)
        )


def test_a_complaint_outranks_a_bounce_in_the_same_batch(app):
    ids = active_subscribers(app, 1, NOW)
    deliveries = sent_deliveries(app, ids)
    events = [
        sg_event("bounce", 1, delivery_id=deliveries[ids[0]], email=f"person{0}@example.com", type="bounce"),
        sg_event("spamreport", 2, delivery_id=deliveries[ids[0]], email=f"person{0}@example.com"),
    ]
    assert process_sendgrid_events(app, events, NOW).suppressed == 1
    assert statuses(app)[ids[0]] == m.SubscriberStatus.COMPLAINED


def test_a_retried_bounce_does_not_undo_a_later_resubscription(app):
    ids = active_subscribers(app, 1, NOW)
    deliveries = sent_deliveries(app, ids)
    bounce = [
        sg_event("bounce", 1, delivery_id=deliveries[ids[0]], email=f"person{0}@example.com", type="bounce")
    ]
    process_sendgrid_events(app, bounce, NOW)
    with transaction(app.engine) as session:
        session.get(
            m.Subscriber, ids[0]
        ).status = m.SubscriberStatus.ACTIVE  # they signed up and confirmed again
    assert process_sendgrid_events(app, bounce, NOW).suppressed == 0
    assert statuses(app)[ids[0]] == m.SubscriberStatus.ACTIVE


def test_a_resubscribe_event_changes_nobody(app):
    ids = active_subscribers(app, 1, NOW)
    with transaction(app.engine) as session:
        session.get(m.Subscriber, ids[0]).status = m.SubscriberStatus.UNSUBSCRIBED
    process_sendgrid_events(app, [sg_event("group_resubscribe", 1, email="person0@example.com")], NOW)
    assert statuses(app)[ids[0]] == m.SubscriberStatus.UNSUBSCRIBED


def test_handle_verifies_before_storing_anything(tmp_path):
    signer = WebhookSigner()
    keyed = make_app(tmp_path, environ=signer.environ)
    try:
        body = webhook_body([sg_event("delivered", 1)])
        now = datetime.now(UTC)
        with pytest.raises(WebhookRejected):
            handle_sendgrid(keyed, body.encode(), {}, now)
        assert stored(keyed) == []
        report = handle_sendgrid(
            keyed, body.encode(), signer.headers(body, timestamp=int(now.timestamp())), now
        )
        assert report.stored == 1
    finally:
        keyed.close()


def test_events_can_be_counted_by_kind(app):
    events = [sg_event("open", n) for n in range(3)] + [sg_event("click", 10, url="https://x.example/")]
    report = process_sendgrid_events(app, events, NOW)
    assert report.kinds == {"opened": 3, "clicked": 1}
    with transaction(app.engine) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(m.ProviderEvent).where(m.ProviderEvent.kind == "opened")
            )
            == 3
        )


def event_bits(app, deliveries):
    with transaction(app.engine) as session:
        found = dict(session.execute(select(m.Delivery.id, m.Delivery.event_bits)).all())
    return {subscriber: found[delivery] for subscriber, delivery in deliveries.items()}


def test_each_stored_event_sets_its_kind_on_the_delivery_once(tmp_path):
    """The Results count the bits (nurture.reporting.email_counts), not the events: each event
    stored for a delivery sets its kind's bit; repeats, events tied to no one and events
    naming another address set nothing."""
    app = make_app(tmp_path, **{"delivery.tracking": "per_person"})
    ids = active_subscribers(app, 3, NOW)
    deliveries = sent_deliveries(app, ids)
    person = [f"person{n}@example.com" for n in range(3)]
    events = [
        sg_event("processed", 1, delivery_id=deliveries[ids[0]], email=person[0]),
        sg_event("delivered", 2, delivery_id=deliveries[ids[0]], email=person[0]),
        sg_event("open", 3, delivery_id=deliveries[ids[0]], email=person[0]),
        sg_event("open", 4, delivery_id=deliveries[ids[0]], email=person[0]),
        sg_event("bounce", 5, delivery_id=deliveries[ids[1]], email=person[1], type="bounce"),
        sg_event("delivered", 6, delivery_id=deliveries[ids[2]], email="someone.else@example.com"),
    ]
    process_sendgrid_events(app, events, NOW)
    # delivered 1, opened 2, bounced 8 (EVENT_BITS)
    assert event_bits(app, deliveries) == {ids[0]: 1 | 2, ids[1]: 8, ids[2]: 0}
    process_sendgrid_events(
        app,
        [
            *events,
            sg_event("click", 7, delivery_id=deliveries[ids[0]], email=person[0], url="https://x.example/"),
        ],
        NOW,
    )
    assert event_bits(app, deliveries) == {ids[0]: 1 | 2 | 4, ids[1]: 8, ids[2]: 0}


def test_opens_tied_to_no_one_set_no_bit(app):
    """delivery.tracking is off by default: an open names its email, not the delivery."""
    ids = active_subscribers(app, 1, NOW)
    deliveries = sent_deliveries(app, ids)
    process_sendgrid_events(
        app, [sg_event("open", 1, delivery_id=deliveries[ids[0]], email="person0@example.com")], NOW
    )
    assert event_bits(app, deliveries) == {ids[0]: 0}


@pytest.mark.postgres
def test_storing_and_suppressing_on_postgresql(tmp_path, postgres_url):
    app = make_app(tmp_path, database_url=postgres_url)
    try:
        ids = active_subscribers(app, 3, NOW)
        deliveries = sent_deliveries(app, ids)
        events = [
            sg_event("delivered", n, delivery_id=deliveries[ids[n % 3]], email=f"person{n % 3}@example.com")
            for n in range(600)
        ]
        events += [
            sg_event(
                "bounce", 900, delivery_id=deliveries[ids[0]], email=f"person{0}@example.com", type="bounce"
            ),
            sg_event("unsubscribe", 901, email="PERSON1@example.com"),
        ]
        first = process_sendgrid_events(app, events, NOW)
        assert (first.stored, first.suppressed) == (602, 2)
        again = process_sendgrid_events(app, events, NOW)
        assert (again.stored, again.duplicates, again.suppressed) == (0, 602, 0)
        assert [statuses(app)[sid] for sid in ids] == [
            m.SubscriberStatus.BOUNCED,
            m.SubscriberStatus.UNSUBSCRIBED,
            m.SubscriberStatus.ACTIVE,
        ]
        assert len(stored(app)) == 602
    finally:
        app.close()
