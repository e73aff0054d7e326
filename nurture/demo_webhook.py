"""Provider events for the demo, sent through the real signed-webhook path.

A throwaway P-256 key signs SendGrid-shaped event batches exactly as SendGrid
would; `handle` verifies, normalizes and stores them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from nurture.app import App
from nurture.providers.sendgrid.event_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import handle_sendgrid


class DemoSigner:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(public).decode()

    def headers(self, body: bytes, now: datetime) -> dict[str, str]:
        stamp = str(int(now.timestamp()))
        signature = self.key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp}


def record_demo_events(app: App, now: datetime, *, unsubscribe_one: bool, seen: set[int]) -> list[str]:
    """Delivered, some opens and clicks (and optionally one unsubscribe) for sent deliveries not yet seen."""
    signer = DemoSigner()
    secrets = dataclasses.replace(app.config.secrets, webhook_public_key=signer.public_key)
    signed_app = App(config=dataclasses.replace(app.config, secrets=secrets), engine=app.engine)
    chance = random.Random(len(seen) + 7)
    with transaction(app.engine) as session:
        rows = session.execute(
            select(
                m.Delivery.id,
                m.Delivery.stream,
                m.Delivery.step,
                m.Delivery.provider_message_id,
                m.Delivery.message_key,
                m.Subscriber.email,
            )
            .join(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .where(m.Delivery.status == m.DeliveryStatus.SENT)
            .order_by(m.Delivery.id)
        ).all()
    events = []
    stamp = int(now.timestamp())
    unsubscribed = None
    for row in rows:
        if row.id in seen:
            continue
        seen.add(row.id)
        base = {
            "email": row.email,
            "timestamp": stamp,
            "sg_message_id": row.provider_message_id or "",
            "delivery_id": row.message_key or str(row.id),  # what nurture put in the email
        }
        events.append({**base, "event": "delivered", "sg_event_id": f"demo-{row.id}-delivered"})
        if chance.random() < 0.65:
            events.append({**base, "event": "open", "sg_event_id": f"demo-{row.id}-open"})
            if chance.random() < 0.4:
                events.append(
                    {
                        **base,
                        "event": "click",
                        "url": "https://www.example.com/articles",
                        "sg_event_id": f"demo-{row.id}-click",
                    }
                )
        if unsubscribe_one and unsubscribed is None and row.step == 2:
            unsubscribed = row.id
            events.append({**base, "event": "unsubscribe", "sg_event_id": f"demo-{row.id}-unsubscribe"})
    if not events:
        return []
    body = json.dumps(events).encode()
    report = handle_sendgrid(signed_app, body, signer.headers(body, now), now)
    lines = [f"{len(events)} signed webhook events accepted: {report.line()}"]
    if unsubscribed is not None:
        lines.append("one reader unsubscribed through the webhook; the rest of the series stops for them")
    return lines
