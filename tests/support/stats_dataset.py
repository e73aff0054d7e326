"""A hand-built set of deliveries, provider events and unsubscribes whose stats are known exactly.

The stats and report tests check every figure against it; the browser tests draw the
report from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nurture.app import App
from nurture.content.approved import stored_content
from nurture.content.campaigns import load_email
from nurture.sending.streams import newsletter_stream
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.store.summaries import add_event_bits
from tests.support.factories import at

WINTER_SUBJECT = "A gentle note for the winter months"
KAP = "kap-intro"


@dataclass
class Dataset:
    newsletter_id: int
    stream: str  # "newsletter:<id>"
    deliveries: dict[str, int]  # d1.. -> id


def _person(session, index: int) -> int:  # type: ignore[no-untyped-def]
    address = f"s{index}@example.com"
    row = m.Subscriber(
        email=address,
        email_key=address,
        first_name=None,
        timezone="America/New_York",
        status=m.SubscriberStatus.ACTIVE,
        source="test",
        created_at=at("2026-11-01 12:00"),
        confirmed_at=at("2026-11-01 12:00"),
        status_changed_at=at("2026-11-01 12:00"),
        confirm_nonce=1,
    )
    session.add(row)
    session.flush()
    return row.id


def build_dataset(app: App) -> Dataset:
    """Six people, thirteen deliveries, events of every kind, and web unsubscribes.

    Practice zone: America/Los_Angeles (PST, UTC-8 in November and December).
    """
    with transaction(app.engine) as session:
        s = {i: _person(session, i) for i in range(1, 7)}
        source = load_email(app.config.campaigns_dir / "newsletters" / "2026-12-winter-note.md")
        letter = m.Newsletter(
            source_file=str(source.path),
            subject=WINTER_SUBJECT,
            content=stored_content(source),
            segment_tag=None,
            send_at_local="2026-12-03T09:00:00",
            timezone_mode="practice",
            first_due_at=at("2026-12-03 17:00"),
            status=m.NewsletterStatus.SENT,
            created_at=at("2026-11-25 12:00"),
            updated_at=at("2026-12-03 17:00"),
        )
        cancelled = m.Newsletter(
            source_file=str(source.path),
            subject="Never sent",
            content=stored_content(source),
            segment_tag=None,
            send_at_local="2026-12-10T09:00:00",
            timezone_mode="practice",
            first_due_at=at("2026-12-10 17:00"),
            status=m.NewsletterStatus.CANCELLED,
            created_at=at("2026-11-25 12:00"),
            updated_at=at("2026-11-26 12:00"),
        )
        session.add_all([letter, cancelled])
        session.flush()
        stream = newsletter_stream(letter.id)
        plan = {
            # name: (subscriber, stream, step, status, claimed_at)
            "d0": (s[6], KAP, 3, m.DeliveryStatus.SENT, at("2026-11-20 17:00")),  # before --since 2026-12-01
            "d1": (s[1], KAP, 1, m.DeliveryStatus.SENT, at("2026-12-01 17:00")),
            "d2": (s[2], KAP, 1, m.DeliveryStatus.SENT, at("2026-12-01 17:00")),
            "d3": (s[3], KAP, 1, m.DeliveryStatus.SENT, at("2026-12-01 18:45")),
            "d4": (
                s[4],
                KAP,
                1,
                m.DeliveryStatus.SENT,
                at("2026-12-02 07:45"),
            ),  # 23:45 on Dec 1 in Los Angeles
            "d5": (s[5], KAP, 1, m.DeliveryStatus.FAILED, at("2026-12-01 17:00")),
            "d6": (s[6], KAP, 1, m.DeliveryStatus.CLAIMED, at("2026-12-01 17:00")),
            "d7": (s[1], KAP, 2, m.DeliveryStatus.SENT, at("2026-12-04 17:00")),
            "d8": (s[2], KAP, 2, m.DeliveryStatus.SENT, at("2026-12-04 17:00")),
            "d9": (s[1], stream, 1, m.DeliveryStatus.SENT, at("2026-12-03 17:00")),
            "d10": (s[2], stream, 1, m.DeliveryStatus.SENT, at("2026-12-03 17:00")),
            "d11": (s[3], stream, 1, m.DeliveryStatus.SENT, at("2026-12-03 17:00")),
            "d12": (s[4], stream, 1, m.DeliveryStatus.SKIPPED, at("2026-12-03 17:00")),
        }
        ids: dict[str, int] = {}
        for name, (subscriber, row_stream, step, status, claimed) in plan.items():
            delivery = m.Delivery(
                subscriber_id=subscriber,
                stream=row_stream,
                step=step,
                status=status,
                claimed_at=claimed,
                finished_at=claimed,
                newsletter_id=letter.id if row_stream == stream else None,
                worker="test",
            )
            session.add(delivery)
            session.flush()
            ids[name] = delivery.id
        events = [
            ("d0", "delivered"),
            ("d0", "opened"),
            ("d1", "accepted"),
            ("d1", "delivered"),
            ("d1", "opened"),
            ("d1", "opened"),
            ("d1", "clicked"),
            ("d1", "clicked"),
            ("d1", "unknown"),
            ("d2", "delivered"),
            ("d2", "opened"),
            ("d3", "bounced_hard"),
            ("d4", "bounced_soft"),
            ("d4", "rejected"),  # one bounced delivery, not two
            ("d5", "delivered"),
            ("d5", "opened"),  # a failed delivery: not counted
            ("d6", "delivered"),  # still claimed: not counted
            ("d7", "delivered"),
            ("d7", "opened"),
            ("d7", "complained"),
            ("d7", "unsubscribed"),
            ("d8", "delivered"),
            ("d8", "deferred"),
            ("d9", "delivered"),
            ("d9", "opened"),
            ("d9", "clicked"),
            ("d10", "rejected"),
            ("d11", "delivered"),
            ("d11", "opened"),
            ("d11", "unsubscribed"),
            (None, "opened"),  # the webhook could not match it to a delivery
        ]
        for number, (name, kind) in enumerate(events):
            delivery_id = ids[name] if name else None
            session.add(
                m.ProviderEvent(
                    provider="sendgrid",
                    provider_event_id=f"ev-{number}",
                    kind=kind,
                    raw_event=kind,
                    delivery_id=delivery_id,
                    stream=None,
                    step=None,
                    occurred_at=at("2026-12-05 12:00"),
                    received_at=at("2026-12-05 12:00"),
                )
            )
        session.flush()
        # As nurture.provider_events.store_events does on storing them.
        add_event_bits(session, [(ids[name], kind) for name, kind in events if name])
        unsubscribes = [
            (s[1], at("2026-12-02 12:00"), "from kap-intro"),  # latest kap-intro email then: d1 (step 1)
            (s[2], at("2026-12-05 12:00"), "from kap-intro"),  # latest: d8 (step 2)
            (
                s[3],
                at("2026-12-03 18:00"),
                f"from {stream}; too many emails",
            ),  # d11, already counted by its event
            (s[4], at("2026-12-05 12:00"), None),  # from the command line: no email to credit
            (s[4], at("2026-12-05 12:00"), "from kap-intro-extra"),  # another stream that starts alike
            (s[5], at("2026-12-05 12:00"), "from kap-intro"),  # only a failed delivery: nothing to credit
        ]
        for subscriber, when, detail in unsubscribes:
            session.add(
                m.ConsentEvent(
                    subscriber_id=subscriber,
                    kind=m.ConsentKind.UNSUBSCRIBE,
                    occurred_at=when,
                    recorded_at=when,
                    source="web",
                    detail=detail,
                )
            )
    return Dataset(letter.id, stream, ids)
