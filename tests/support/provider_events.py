"""Post signed SendGrid events for what the stand-in received, through the real webhook code."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from nurture.app import App
from nurture.provider_events import WebhookReport
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import handle_sendgrid
from tests.support.sendgrid_standin import StandInMessage
from tests.support.webserver import WebhookSigner, sg_event, webhook_body


def events_for(
    messages: Iterable[StandInMessage], kind: str = "processed", **fields: Any
) -> list[dict[str, Any]]:
    """One event of `kind` per message, naming its delivery the way SendGrid echoes custom_args."""
    events = []
    for message in messages:
        key = message.custom_args["delivery_id"]  # our message key, echoed as SendGrid does
        event = sg_event(
            kind,
            int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % 1_000_000,
            delivery_id=key,
            campaign=message.custom_args.get("campaign"),
            step=int(message.custom_args.get("step", "1")),
            email=message.to_email,
            **fields,
        )
        events.append(event)
    return events


def post_events(
    app: App, signer: WebhookSigner, events: list[dict[str, Any]], now: datetime | None = None
) -> WebhookReport:
    """Sign like SendGrid and hand the raw request to the webhook's own handler, received at `now`
    (the test's clock; the wall clock if None)."""
    body = webhook_body(events)
    moment = now or datetime.now(UTC)
    headers = signer.headers(body, timestamp=int(moment.timestamp()))
    return handle_sendgrid(app, body.encode("utf-8"), headers, moment)


def delivery_ids(app: App) -> dict[str, int]:
    """Each message key (what the provider echoes) -> its delivery row's id."""
    with transaction(app.engine) as session:
        return {
            key: delivery_id
            for key, delivery_id in session.execute(select(m.Delivery.message_key, m.Delivery.id))
            if key is not None
        }
