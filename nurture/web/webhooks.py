"""POST /webhooks/sendgrid: SendGrid's signed Event Webhook.

`handle_sendgrid` puts the pieces together: SendGrid's own module checks the request
and reads its events (`nurture.providers.sendgrid.event_webhook`), and the provider-neutral
`nurture.provider_events.receive` stores them. It runs in a worker thread (blocking database
work). A refused request gets a bare "forbidden" / "bad request": the reason goes to
the log, where the owner can read it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nurture import provider_events
from nurture.app import App
from nurture.errors import WebhookRejected
from nurture.provider_events import WebhookReport
from nurture.providers.sendgrid import event_webhook

log = logging.getLogger(__name__)


def handle_sendgrid(app: App, body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookReport:
    """One POST from SendGrid: verify, parse, store. Raises WebhookRejected (403/400) before
    storing anything."""
    payload = event_webhook.verify_request(app.config, body, headers, now)
    report = process_sendgrid_events(app, event_webhook.parse_batch(payload), now)
    log.info("%s", report.line())
    return report


def process_sendgrid_events(app: App, raw_events: Sequence[Any], now: datetime) -> WebhookReport:
    """Normalize a parsed batch of SendGrid events and store it; malformed events are counted and skipped."""
    secret = app.config.secrets.require_secret_key()
    return provider_events.receive(
        app, event_webhook.PROVIDER, raw_events, lambda event: event_webhook.normalize(event, secret), now
    )


async def sendgrid_webhook(request: Request) -> Response:
    app: App = request.app.state.app
    body = await request.body()
    headers = dict(request.headers)
    now: datetime = request.app.state.clock()
    try:
        report = await run_in_threadpool(handle_sendgrid, app, body, headers, now)
    except WebhookRejected as exc:
        log.warning("sendgrid webhook refused (%d): %s", exc.status, exc.reason)
        return JSONResponse(
            {"error": "forbidden" if exc.status == 403 else "bad request"}, status_code=exc.status
        )
    return JSONResponse(report.as_dict())
