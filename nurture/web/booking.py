"""POST /webhooks/booking: a booking ends the series.

The booking system (Calendly, or anything that can send a signed POST) tells us
that someone booked; we tag them `booked`, so every series listing it in
`stop_on_tags` ends for them, and record that it happened in their consent record.
Nothing else from the booking is kept: no name, time, reason or answer. The
booking system is the clinical record, not nurture.

Two formats, both an HMAC-SHA256 (hex) with NURTURE_BOOKING_WEBHOOK_SECRET over
"<t>.<raw body>", where t is the Unix time of signing:

- ours: `X-Nurture-Signature: t=<t>,v1=<hex>` on `{"email": "...", "event": "booked"}`;
- Calendly's: `Calendly-Webhook-Signature: t=<t>,v1=<hex>` on its webhook body,
  where the event is `invitee.created` and the address is `payload.email`.

A bad signature, or one more than five minutes from now, gets 403; a body that is
not the JSON we expect gets 400. A valid request gets the same 200 whether or not
the address is a subscriber (the answer must not tell who is on the list), and a
replay changes nothing: the tag and its record are made once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nurture.app import App
from nurture.audience.consent import record_consent
from nurture.audience.people import find_by_email, tag
from nurture.config import BOOKING_SECRET_ENV
from nurture.errors import InputError, WebhookRejected
from nurture.store import models as m
from nurture.store.db import reading, transaction

log = logging.getLogger(__name__)

BOOKING_BODY_LIMIT = 64 * 1024  # one booking; Calendly's bodies are a few KB
BOOKED_TAG = "booked"
MAX_AGE = timedelta(minutes=5)
_UNIX_TIME = re.compile(r"[0-9]{1,12}", re.ASCII)
OUR_HEADER = "x-nurture-signature"
CALENDLY_HEADER = "calendly-webhook-signature"
_EVENTS = {OUR_HEADER: "booked", CALENDLY_HEADER: "invitee.created"}


async def booking_webhook(request: Request) -> Response:
    app: App = request.app.state.app
    body = await request.body()
    now: datetime = request.app.state.clock()
    try:
        outcome = await run_in_threadpool(handle_booking, app, body, dict(request.headers), now)
    except WebhookRejected as exc:
        log.warning("booking webhook refused (%d): %s", exc.status, exc.reason)
        return JSONResponse(
            {"error": "forbidden" if exc.status == 403 else "bad request"}, status_code=exc.status
        )
    log.info("booking webhook: %s", outcome)
    return JSONResponse({"status": "ok"})


def handle_booking(app: App, body: bytes, headers: Mapping[str, str], now: datetime) -> str:
    """Verify and apply one booking; returns what happened, for the log (never the address)."""
    source = verify_booking(app.config.secrets.booking_webhook_secret, body, headers, now)
    email = booked_address(source, body)
    if email is None:
        return "not a new booking; ignored"
    return (
        "tagged booked"
        if record_booking(app, email, now, source=source)
        else "nothing to do (already booked, or not a subscriber)"
    )


def _signature_parts(value: str) -> tuple[str, list[str]]:
    stamp, signatures = "", []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t":
            stamp = item.strip()
        elif key == "v1":
            signatures.append(item.strip().lower())
    return stamp, signatures


def verify_booking(secret: str | None, body: bytes, headers: Mapping[str, str], now: datetime) -> str:
    """Which format signed it (the header name), or WebhookRejected(403)."""
    if not secret:
        raise WebhookRejected(
            403, f"{BOOKING_SECRET_ENV} is not set: bookings cannot be verified, so none are accepted"
        )
    lowered = {key.lower(): value for key, value in headers.items()}
    header = next((name for name in (OUR_HEADER, CALENDLY_HEADER) if lowered.get(name)), None)
    if header is None:
        raise WebhookRejected(
            403, "unsigned request (no X-Nurture-Signature or Calendly-Webhook-Signature header)"
        )
    stamp, signatures = _signature_parts(lowered[header])
    # ASCII digits only: str.isdigit() also passes "²", which int() refuses.
    if not _UNIX_TIME.fullmatch(stamp) or not signatures:
        raise WebhookRejected(403, "the signature header is not t=<unix time>,v1=<hex>")
    signed_at = datetime.fromtimestamp(int(stamp), UTC)
    if abs(now - signed_at) > MAX_AGE:
        raise WebhookRejected(
            403, "the signature is more than 5 minutes from now (a replay, or a clock problem)"
        )
    expected = hmac.new(
        secret.encode("utf-8"), stamp.encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise WebhookRejected(
            403,
            f"the signature does not match (check {BOOKING_SECRET_ENV} "
            "against the booking system's signing key)",
        )
    return header


def booked_address(source: str, body: bytes) -> str | None:
    """The address of a new booking, None for another kind of event; WebhookRejected(400) if unreadable."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting, still under the size limit
        raise WebhookRejected(400, "the signed body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "the signed body is not a JSON object")
    if data.get("event") != _EVENTS[source]:
        return None
    holder = data if source == OUR_HEADER else data.get("payload")
    email = holder.get("email") if isinstance(holder, dict) else None
    if not isinstance(email, str) or not email.strip():
        where = "email" if source == OUR_HEADER else "payload.email"
        raise WebhookRejected(400, f"the booking has no address in {where}")
    return email.strip()


def record_booking(app: App, email: str, now: datetime, *, source: str) -> bool:
    """Tag a subscriber `booked` (ending their series) and record it once. False when
    the address is nobody here, or the booking was already recorded."""
    try:
        with reading(app.engine) as session:
            subscriber = find_by_email(session, email)
            if subscriber is None:
                return False
            subscriber_id = subscriber.id
            if session.scalar(
                select(m.SubscriberTag.tag).where(
                    m.SubscriberTag.subscriber_id == subscriber_id, m.SubscriberTag.tag == BOOKED_TAG
                )
            ):
                return False
        tag(app, email, BOOKED_TAG, now)
    except InputError:  # not an address at all: nobody here
        return False
    with transaction(app.engine) as session:
        label = "calendly" if source == CALENDLY_HEADER else "signed"
        record_consent(session, subscriber_id, m.ConsentKind.BOOKED, now, source=f"booking webhook ({label})")
    return True
