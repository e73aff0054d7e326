"""POST /webhooks/sendgrid (SendGrid's signed Event Webhook) and POST /webhooks/ses (SNS over HTTPS).

Both stay live whatever `delivery.transport` says: after a switch from SendGrid to SES
or SMTP, emails already handed to SendGrid still settle from SendGrid's events.

`handle_sendgrid` puts the pieces together: SendGrid's own module checks the request
and reads its events (`nurture.providers.sendgrid.event_webhook`), and the provider-neutral
`nurture.provider_events.receive` stores them. It runs in a worker thread (blocking database
work). A refused request gets a bare "forbidden" / "bad request": the reason goes to
the log, where the owner can read it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nurture import provider_events
from nurture.app import App
from nurture.errors import MalformedEvent, WebhookRejected
from nurture.provider_events import WebhookReport
from nurture.providers.sendgrid import event_webhook
from nurture.providers.ses import events as ses_events
from nurture.providers.ses import sns

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


def handle_ses(app: App, body: bytes, now: datetime) -> WebhookReport:
    """One POST from SNS: verify signature, topic and age; confirm our own topic's subscription;
    store a notification's SES record. Raises WebhookRejected before changing anything."""
    message = sns.verify(body, app.config.ses.sns_topic_arn, now)
    report = WebhookReport(ses_events.PROVIDER)
    if message.type == "SubscriptionConfirmation":
        sns.confirm_subscription(message)
        log.info("ses webhook: subscription to the configured SNS topic confirmed")
        return report
    if message.type != "Notification":
        log.info("ses webhook: %s received, nothing to do", message.type)
        return report
    secret = app.config.secrets.require_secret_key()
    try:
        record = json.loads(message.message)
    except (ValueError, RecursionError):
        record = None
    report = _store_ses_record(app, record, secret, now)
    log.info("%s", report.line())
    return report


def _store_ses_record(app: App, record: Any, secret: str, now: datetime) -> WebhookReport:
    report = WebhookReport(ses_events.PROVIDER, received=1)
    try:
        events = ses_events.normalize_record(record, secret)
    except (MalformedEvent, ValueError, TypeError, OverflowError) as exc:
        report.malformed += 1
        log.warning("ses webhook: the record skipped (%s)", type(exc).__name__)
        return report
    return provider_events.store_events(app, report, events, now)


async def ses_webhook(request: Request) -> Response:
    app: App = request.app.state.app
    body = await request.body()
    now: datetime = request.app.state.clock()
    try:
        report = await run_in_threadpool(handle_ses, app, body, now)
    except WebhookRejected as exc:
        log.warning("ses webhook refused (%d): %s", exc.status, exc.reason)
        return JSONResponse(
            {"error": "forbidden" if exc.status == 403 else "bad request"}, status_code=exc.status
        )
    return JSONResponse(report.as_dict())
