"""The SendGrid Event Webhook: verify, normalize, store, suppress.

The web layer hands over the raw body and the headers; everything else is here:

- `verify_request` checks the ECDSA signature (SendGrid's `EventWebhook` helper,
  public key from NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY) over timestamp + raw body,
  and refuses timestamps more than five minutes away from now (replays).
- `normalize` turns one SendGrid event into our kinds (the names below are read
  by the stats code: do not rename them).
- `process_events` stores a batch in one transaction, deduplicated on the
  provider's event id (SendGrid retries for 24 hours; an event without one gets a
  keyed hash of its content, since the content names an address), ties events to deliveries
  through the `delivery_id` custom arg (the only one nurture sends; stream and step come
  from the delivery row), and suppresses the subscriber on a bounce,
  a suppressing drop, a spam complaint or an unsubscribe.
- Opens and clicks are tied to their delivery (so to a person) only when
  `delivery.tracking` is per_person; otherwise they are stored with the email's stream
  and step and no delivery: per-email totals that name no one.

Email addresses are used only to find a subscriber when an event carries no
delivery id; they are never stored or logged. Free-text details (bounce reasons,
clicked URLs) are stored with addresses and link tokens blanked out.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.config import WEBHOOK_KEY_ENV as WEBHOOK_KEY_ENV  # re-exported: the web app names it as webhooks.WEBHOOK_KEY_ENV
from nurture.config import Config
from nurture.errors import InputError
from nurture.store import models as m
from nurture.store.models import EventKind
from nurture.store.db import chunks, transaction
from nurture.tokens import event_digest

log = logging.getLogger(__name__)

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SKEW = timedelta(minutes=5)
MAX_DETAIL = 500
_CHUNK = 500

_SIMPLE_KINDS = {
    "processed": EventKind.PROCESSED,
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "blocked": EventKind.BLOCKED,
    "dropped": EventKind.DROPPED,
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
# Reading behaviour: kept per person only under `delivery.tracking: per_person`.
_READING_KINDS = frozenset({EventKind.OPENED, EventKind.CLICKED})

_SUPPRESSING_DROPS = {
    "invalid": m.ConsentKind.BOUNCE,
    "bounced address": m.ConsentKind.BOUNCE,
    "unsubscribed address": m.ConsentKind.UNSUBSCRIBE,
    "spam reporting address": m.ConsentKind.COMPLAINT,
}
# When one batch carries several suppressing events for one person, the strongest wins.
_SUPPRESS_ORDER = (m.ConsentKind.COMPLAINT, m.ConsentKind.BOUNCE, m.ConsentKind.UNSUBSCRIBE)

# Which free-text fields are worth keeping, per kind (never "email").
_DETAIL_FIELDS = {
    EventKind.BOUNCED: ("type", "bounce_classification", "status", "reason"),
    EventKind.BLOCKED: ("type", "bounce_classification", "status", "reason"),
    EventKind.DROPPED: ("reason", "status"),
    EventKind.DEFERRED: ("response", "attempt"),
    EventKind.DELIVERED: ("response",),
    EventKind.CLICKED: ("url",),
    EventKind.UNKNOWN: ("reason", "status", "response", "url"),
}

_ADDRESS = re.compile(r"[^\s<>\"'(),;:/?&=\[\]]+(?:@|%40)[^\s<>\"'(),;:/?&=\[\]]+", re.IGNORECASE)
_TOKEN_PATH = re.compile(r"(/(?:confirm|unsubscribe)/)[^\s/?#\"'<>]+")


def scrub(text: str) -> str:
    """Blank out email addresses and the tokens in confirm/unsubscribe links."""
    return _TOKEN_PATH.sub(r"\1…", _ADDRESS.sub("[address]", text))


# ---------------------------------------------------------------- errors and results


class WebhookRejected(Exception):
    """The request as a whole is refused. `reason` is for the log: no secrets, no addresses."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class MalformedEvent(ValueError):
    """One event in a batch cannot be used; the others still are."""


@dataclass
class WebhookReport:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    suppressed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # newly stored, by kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "suppressed": self.suppressed,
        }

    def line(self) -> str:
        return (
            f"sendgrid webhook: {self.received} received, {self.stored} stored, {self.duplicates} duplicate, "
            f"{self.malformed} malformed, {self.suppressed} suppressed"
        )


# ---------------------------------------------------------------- signature


@lru_cache(maxsize=4)
def _public_key(key_text: str) -> Any:
    from sendgrid.helpers.eventwebhook import EventWebhook

    return EventWebhook().convert_public_key_to_ecdsa(key_text.strip())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_request(config: Config, body: bytes, headers: Mapping[str, str], now: datetime) -> str:
    """Return the body as text if SendGrid signed it just now; else raise WebhookRejected(403)."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    key_text = config.secrets.webhook_public_key
    if not key_text:
        raise WebhookRejected(403, f"{WEBHOOK_KEY_ENV} is not set: events cannot be verified, so none are accepted")
    try:
        key = _public_key(key_text)
    except (ValueError, TypeError):
        raise WebhookRejected(
            403, f"{WEBHOOK_KEY_ENV} is not a valid public key: paste the base64 key from SendGrid's Signed Event Webhook settings"
        ) from None
    signature = _header(headers, SIGNATURE_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    if not signature or not stamp:
        raise WebhookRejected(403, "unsigned request (signature or timestamp header missing)")
    stamp = stamp.strip()
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookRejected(403, "the signature timestamp is not a Unix time")
    signed_at = datetime.fromtimestamp(int(stamp), timezone.utc)
    if abs(now - signed_at) > MAX_SKEW:
        raise WebhookRejected(403, "the signature timestamp is more than 5 minutes from now (a replay, or a clock problem)")
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
    try:
        data = json.loads(payload)
    except ValueError:
        raise WebhookRejected(400, "the signed body is not JSON") from None
    if not isinstance(data, list):
        raise WebhookRejected(400, "the signed body is not a JSON array of events")
    return data


# ---------------------------------------------------------------- one event


@dataclass(frozen=True)
class Normalized:
    provider_event_id: str
    kind: str
    raw_event: str
    delivery_ref: int | None  # from custom args; not yet checked against the store
    stream: str | None
    step: int | None
    occurred_at: datetime
    detail: str | None
    suppress: str | None  # m.ConsentKind.BOUNCE / m.ConsentKind.COMPLAINT / m.ConsentKind.UNSUBSCRIBE, or None
    email: str | None = field(default=None, repr=False)  # only to find the subscriber; never stored


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    return number if 0 < number < 2**63 else None


def _timestamp(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MalformedEvent("timestamp missing or not a number")
    try:
        seconds = float(value)
        if not 0 < seconds < 2**37:
            raise ValueError
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise MalformedEvent("timestamp is not a Unix time") from None


def _event_id(event: Mapping[str, Any], secret: str) -> str:
    raw = event.get("sg_event_id")
    if isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw).strip():
        text = str(raw).strip()
        return text if len(text) <= 200 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "hmac:" + event_digest(secret, canonical)


def _detail(kind: EventKind, event: Mapping[str, Any]) -> str | None:
    parts = []
    for name in _DETAIL_FIELDS.get(kind, ()):
        value = event.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue
        text = " ".join(str(value).split())
        if text:
            parts.append(f"{name}={text}")
    if not parts:
        return None
    text = scrub("; ".join(parts))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def normalize(event: Any, secret: str) -> Normalized:
    """One SendGrid event in our terms, or MalformedEvent. `secret` keys the id made
    for an event that has no sg_event_id."""
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    name = event.get("event")
    if not isinstance(name, str) or not name.strip():
        raise MalformedEvent("no event name")
    name = name.strip()
    occurred_at = _timestamp(event.get("timestamp"))
    lowered = name.lower()
    if lowered == "bounce":
        kind = EventKind.BLOCKED if str(event.get("type", "")).strip().lower() == "blocked" else EventKind.BOUNCED
    else:
        kind = _SIMPLE_KINDS.get(lowered, EventKind.UNKNOWN)

    suppress = None
    if kind == EventKind.BOUNCED:
        suppress = m.ConsentKind.BOUNCE
    elif kind == EventKind.COMPLAINED:
        suppress = m.ConsentKind.COMPLAINT
    elif kind == EventKind.UNSUBSCRIBED:
        suppress = m.ConsentKind.UNSUBSCRIBE
    elif kind == EventKind.DROPPED:
        reason = event.get("reason")
        if isinstance(reason, str):
            suppress = _SUPPRESSING_DROPS.get(reason.strip().lower())

    stream = event.get("campaign")
    email = event.get("email")
    return Normalized(
        provider_event_id=_event_id(event, secret),
        kind=kind,
        raw_event=name[:40],
        delivery_ref=_int(event.get("delivery_id")),
        stream=(stream.strip()[:120] or None) if isinstance(stream, str) else None,
        step=_int(event.get("step")),
        occurred_at=occurred_at,
        detail=_detail(kind, event),
        suppress=suppress,
        email=email if isinstance(email, str) and email.strip() else None,
    )


# ---------------------------------------------------------------- a batch


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _email_key(address: str) -> str | None:
    from nurture.audience.subscribers import normalize_email

    try:
        return normalize_email(address)[1]
    except InputError:
        return None


def process_events(app: App, events: Sequence[Any], now: datetime) -> WebhookReport:
    """Store one batch (one transaction) and suppress whom it says to. Malformed events are counted and skipped."""
    report = WebhookReport(received=len(events))
    batch: dict[str, Normalized] = {}
    secret = app.config.secrets.require_secret_key()
    for index, event in enumerate(events):
        try:
            item = normalize(event, secret)
        except MalformedEvent as exc:
            report.malformed += 1
            log.warning("sendgrid webhook: event %d of %d skipped: %s", index + 1, len(events), exc)
            continue
        if item.provider_event_id in batch:
            report.duplicates += 1
        else:
            batch[item.provider_event_id] = item
    if not batch:
        return report

    items = list(batch.values())
    with transaction(app.engine) as session:
        # Which referenced deliveries exist, and whose they are: one query per 500.
        wanted = sorted({item.delivery_ref for item in items if item.delivery_ref is not None})
        owners: dict[int, int | None] = {}
        emails: dict[int, tuple[str, int]] = {}  # delivery -> (stream, step)
        for chunk in chunks(wanted, _CHUNK):
            found = select(m.Delivery.id, m.Delivery.subscriber_id, m.Delivery.stream, m.Delivery.step).where(m.Delivery.id.in_(chunk))
            for delivery_id, subscriber_id, stream, step in session.execute(found):
                owners[delivery_id] = subscriber_id
                emails[delivery_id] = (stream, step)
        per_person = app.config.delivery.tracking == "per_person"

        def delivery_of(item: Normalized) -> int | None:
            if item.delivery_ref not in owners or (item.kind in _READING_KINDS and not per_person):
                return None
            return item.delivery_ref

        rows = [
            {
                "provider": PROVIDER,
                "provider_event_id": item.provider_event_id,
                "kind": item.kind,
                "raw_event": item.raw_event,
                "delivery_id": delivery_of(item),
                "stream": emails[item.delivery_ref][0] if item.delivery_ref in emails else item.stream,
                "step": emails[item.delivery_ref][1] if item.delivery_ref in emails else item.step,
                "occurred_at": item.occurred_at,
                "received_at": now,
                "detail": item.detail,
            }
            for item in items
        ]
        table = m.ProviderEvent.__table__
        statement = (
            _insert(session)(table).on_conflict_do_nothing(index_elements=["provider_event_id"]).returning(table.c.provider_event_id)
        )
        stored: set[str] = set()
        for chunk in chunks(rows, _CHUNK):
            stored.update(session.scalars(statement, list(chunk)))
        report.stored = len(stored)
        report.duplicates += len(items) - len(stored)
        for item in items:
            if item.provider_event_id in stored:
                report.kinds[item.kind] = report.kinds.get(item.kind, 0) + 1

        # Suppress only on events seen for the first time: a retried duplicate must not
        # undo a later, deliberate re-subscription.
        fresh = [item for item in items if item.suppress and item.provider_event_id in stored]
        report.suppressed = _suppress(session, fresh, owners, now)
    return report


def _suppress(session: Session, items: Sequence[Normalized], owners: Mapping[int, int | None], now: datetime) -> int:
    if not items:
        return 0
    by_subscriber: dict[int, Normalized] = {}
    by_key: dict[str, list[Normalized]] = {}
    for item in items:
        owner = owners.get(item.delivery_ref) if item.delivery_ref is not None else None
        if owner is not None:
            _keep_strongest(by_subscriber, owner, item)
        elif item.email:
            key = _email_key(item.email)
            if key:
                by_key.setdefault(key, []).append(item)
    keys = list(by_key)
    for chunk in chunks(keys, _CHUNK):
        for subscriber_id, email_key in session.execute(
            select(m.Subscriber.id, m.Subscriber.email_key).where(m.Subscriber.email_key.in_(chunk))
        ):
            for item in by_key[email_key]:
                _keep_strongest(by_subscriber, subscriber_id, item)

    from nurture.audience.subscribers import suppress

    groups: dict[tuple[str, str], list[int]] = {}
    for subscriber_id, item in by_subscriber.items():
        assert item.suppress is not None
        groups.setdefault((item.suppress, item.raw_event), []).append(subscriber_id)
    changed = 0
    for kind in _SUPPRESS_ORDER:
        for (group_kind, raw_event), ids in sorted(groups.items()):
            if group_kind == kind:
                changed += suppress(session, ids, kind, now, source="sendgrid webhook", detail=f"sendgrid event: {raw_event}")
    return changed


def _keep_strongest(chosen: dict[int, Normalized], subscriber_id: int, item: Normalized) -> None:
    current = chosen.get(subscriber_id)
    if current is None or _SUPPRESS_ORDER.index(str(item.suppress)) < _SUPPRESS_ORDER.index(str(current.suppress)):
        chosen[subscriber_id] = item


def handle(app: App, body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookReport:
    """One POST from SendGrid: verify, parse, store. Raises WebhookRejected (403/400) before storing anything."""
    payload = verify_request(app.config, body, headers, now)
    report = process_events(app, parse_batch(payload), now)
    log.info("%s", report.line())
    return report

