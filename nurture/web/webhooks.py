"""POST /webhooks/sendgrid: SendGrid's signed Event Webhook.

The checking and storing happen in `nurture.providers.sendgrid.events.handle`
(in a worker thread: it is blocking database work); this only turns its outcome
into an answer. A refused request gets a bare "forbidden" / "bad request": the
reason goes to the log, where the owner can read it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nurture.app import App
from nurture.errors import WebhookRejected
from nurture.providers.sendgrid import events as sendgrid_events

log = logging.getLogger(__name__)


async def sendgrid_webhook(request: Request) -> Response:
    app: App = request.app.state.app
    body = await request.body()
    headers = dict(request.headers)
    now: datetime = request.app.state.clock()
    try:
        report = await run_in_threadpool(sendgrid_events.handle, app, body, headers, now)
    except WebhookRejected as exc:
        log.warning("sendgrid webhook refused (%d): %s", exc.status, exc.reason)
        return JSONResponse({"error": "forbidden" if exc.status == 403 else "bad request"}, status_code=exc.status)
    return JSONResponse(report.as_dict())
