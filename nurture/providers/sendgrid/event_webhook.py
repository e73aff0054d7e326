"""SendGrid's signed Event Webhook: verify the request, read the batch, put each event in our terms.

The webhook endpoint (`nurture.web.webhooks`) runs these, in order, and hands the
result to `nurture.provider_events.receive`, which stores it:

- `verify_request`: the ECDSA signature (SendGrid's `EventWebhook` helper, public
  key from NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY) over timestamp + raw body, and no
  timestamp more than five minutes away from now (replays);
- `parse_batch`: the body must be a JSON array; nesting is bounded (see `batch`),
  an event nested too deeply is one malformed event;
- `normalize`: one SendGrid event as a `NormalizedEvent` (names we do not know are
  kept as UNKNOWN; an event we cannot use at all, or cannot store as it is (a lone
  surrogate, a control character in an id), is counted as malformed and skipped);
- then `nurture.provider_events`: store once, tie to deliveries, settle stuck deliveries, suppress.

An event without an sg_event_id gets a keyed hash of its content as its id (the
content names an address, so a plain hash would not do). Free-text details
(bounce reasons, clicked URLs) are kept only from the fields listed per kind,
scrubbed of addresses and link tokens.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook

from nurture.config import WEBHOOK_KEY_ENV, Config
from nurture.errors import MalformedEvent, WebhookRejected
from nurture.providers.base import NormalizedEvent, delivery_ref
from nurture.providers.sendgrid import batch
from nurture.redaction import scrub
from nurture.store.models import ConsentKind, EventKind
from nurture.tokens import event_digest

log = logging.getLogger(__name__)

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SKEW = timedelta(minutes=5)
MAX_DETAIL = 500
# ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses.
_UNIX_TIME = re.compile(r"[0-9]{1,12}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
MAX_STEP = 2**31  # steps are an INTEGER column

# SendGrid's names in the neutral vocabulary: "processed" is its acceptance, a "bounce"
# (type bounce) is permanent, a block (type blocked, or the old "blocked" event) is a
# temporary refusal, and "dropped" is SendGrid declining to send at all.
_SIMPLE_KINDS = {
    "processed": EventKind.ACCEPTED,
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "blocked": EventKind.BOUNCED_SOFT,
    "dropped": EventKind.REJECTED,
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "spamreport": EventKind.COMPLAINED,
    "spam_report": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
    "group_unsubscribe": EventKind.UNSUBSCRIBED,
    "group_resubscribe": EventKind.RESUBSCRIBED,
}

# SendGrid's drop reasons that mean "never mail this address again". The others
# ("Invalid SMTPAPI header", "Spam Content") are about the message, not the person.
_SUPPRESSING_DROPS = {
    "invalid": ConsentKind.BOUNCE,
    "bounced address": ConsentKind.BOUNCE,
    "unsubscribed address": ConsentKind.UNSUBSCRIBE,
    "spam reporting address": ConsentKind.COMPLAINT,
}

# Which free-text fields are worth keeping, per kind (never "email").
_DETAIL_FIELDS = {
    EventKind.BOUNCED_HARD: ("type", "bounce_classification", "status", "reason"),
    EventKind.BOUNCED_SOFT: ("type", "bounce_classification", "status", "reason"),
    EventKind.REJECTED: ("reason", "status"),
    EventKind.DEFERRED: ("response", "attempt"),
    EventKind.DELIVERED: ("response",),
    EventKind.CLICKED: ("url",),
    EventKind.UNKNOWN: ("reason", "status", "response", "url"),
}


# ---------------------------------------------------------------- the request


@lru_cache(maxsize=4)
def _public_key(key_text: str) -> Any:
    return EventWebhook().convert_public_key_to_ecdsa(key_text.strip())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_request(config: Config, body: bytes, headers: Mapping[str, str], now: datetime) -> str:
    """Return the body as text if SendGrid signed it just now; else raise WebhookRejected(403)."""
    key_text = config.secrets.webhook_public_key
    if not key_text:
        raise WebhookRejected(
            403, f"{WEBHOOK_KEY_ENV} is not set: events cannot be verified, so none are accepted"
        )
    try:
        key = _public_key(key_text)
    except (ValueError, TypeError):
        raise WebhookRejected(
            403,
            f"{WEBHOOK_KEY_ENV} is not a valid public key: paste the "
            "base64 key from SendGrid's Signed Event Webhook settings",
        ) from None
    signature = _header(headers, SIGNATURE_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    if not signature or not stamp:
        raise WebhookRejected(403, "unsigned request (signature or timestamp header missing)")
    stamp = stamp.strip()
    if not _UNIX_TIME.fullmatch(stamp):
        raise WebhookRejected(403, "the signature timestamp is not a Unix time")
    # Compared as numbers: a datetime cannot hold every 12-digit time (year 10000 and on).
    if abs(now.timestamp() - int(stamp)) > MAX_SKEW.total_seconds():
        raise WebhookRejected(
            403, "the signature timestamp is more than 5 minutes from now (a replay, or a clock problem)"
        )
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(403, "the body is not UTF-8, so its signature cannot be checked") from None
    try:
        valid = EventWebhook().verify_signature(payload, signature.strip(), stamp, key)
    except (binascii.Error, ValueError, TypeError):
        valid = False
    if not valid:
        raise WebhookRejected(403, "the signature does not match (wrong key, or the body was changed)")
    return payload


def parse_batch(payload: str) -> list[Any]:
    """The signed body's events. An event nested too deeply comes back as `batch.TOO_DEEP`."""
    return batch.parse_batch(payload)


# ---------------------------------------------------------------- one event


def _int(value: Any, limit: int = 2**63) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        return None
    return number if 0 < number < limit else None


def _has_broken_text(value: Any) -> bool:
    """A lone surrogate anywhere in the event (keys included): JSON's \\ud800 escape
    allows it, but no database or log can take it. Nesting is bounded by `batch`."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_broken_text(key) or _has_broken_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_broken_text(item) for item in value)
    return False


def _name(value: Any, field: str) -> str | None:
    """A short identifier we store as is (event name, event id, campaign): no control characters."""
    if not isinstance(value, str):
        return None
    if _CONTROL.search(value):
        raise MalformedEvent(f"{field} contains control characters")
    return value.strip() or None


def _timestamp(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MalformedEvent("timestamp missing or not a number")
    try:
        seconds = float(value)
        if not 0 < seconds < 2**37:
            raise ValueError
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        raise MalformedEvent("timestamp is not a Unix time") from None


def _event_id(event: Mapping[str, Any], secret: str) -> str:
    raw = event.get("sg_event_id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    text = _name(raw, "sg_event_id")
    if text:
        return text if len(text) <= 200 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "hmac:" + event_digest(secret, canonical)


def _detail(kind: EventKind, event: Mapping[str, Any]) -> str | None:
    parts = []
    for name in _DETAIL_FIELDS.get(kind, ()):
        value = event.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue
        # Scrubbed first: scrub decodes (%0A, &#10;), and what it decodes is then tidied too.
        text = " ".join(_CONTROL.sub(" ", scrub(str(value))).split())
        if text:
            parts.append(f"{name}={text}")
    if not parts:
        return None
    text = "; ".join(parts)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def normalize(event: Any, secret: str) -> NormalizedEvent:
    """One SendGrid event in our terms, or MalformedEvent. `secret` keys the id made
    for an event that has no sg_event_id."""
    if event is batch.TOO_DEEP:
        raise MalformedEvent(f"nested more than {batch.MAX_NESTING} levels deep")
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    if _has_broken_text(event):
        raise MalformedEvent("text that is not valid Unicode (a lone surrogate)")
    name = _name(event.get("event"), "event")
    if not name:
        raise MalformedEvent("no event name")
    occurred_at = _timestamp(event.get("timestamp"))
    lowered = name.lower()
    if lowered == "bounce":
        kind = (
            EventKind.BOUNCED_SOFT
            if str(event.get("type", "")).strip().lower() == "blocked"
            else EventKind.BOUNCED_HARD
        )
    else:
        kind = _SIMPLE_KINDS.get(lowered, EventKind.UNKNOWN)

    suppress = None
    if kind == EventKind.BOUNCED_HARD:
        suppress = ConsentKind.BOUNCE
    elif kind == EventKind.COMPLAINED:
        suppress = ConsentKind.COMPLAINT
    elif kind == EventKind.UNSUBSCRIBED:
        suppress = ConsentKind.UNSUBSCRIBE
    elif kind == EventKind.REJECTED:
        reason = event.get("reason")
        if isinstance(reason, str):
            suppress = _SUPPRESSING_DROPS.get(reason.strip().lower())

    stream = _name(event.get("campaign"), "campaign")
    email = event.get("email")
    return NormalizedEvent(
        provider_event_id=_event_id(event, secret),
        kind=kind,
        raw_event=name[:40],
        delivery_ref=delivery_ref(event.get("delivery_id")),
        stream=stream[:120] if stream else None,
        step=_int(event.get("step"), MAX_STEP),
        occurred_at=occurred_at,
        detail=_detail(kind, event),
        suppress=suppress,
        email=email if isinstance(email, str) and email.strip() else None,
    )
