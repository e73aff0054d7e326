"""SES event records in our terms: one `NormalizedEvent` per recipient a record names.

SES publishes a JSON record per event through the configuration set (to SNS, then an
SQS queue or our HTTPS endpoint). The record's `eventType` (or `notificationType`, for
the older identity notifications) says what happened; `mail.tags.delivery_id` is the
tag the transport put on the email, so the event finds its delivery without reading
an address. One record may name several recipients (a bounce of a message to three
people); each becomes its own event, because each is about one person.

- Send -> accepted; Delivery -> delivered; DeliveryDelay -> deferred;
- Bounce: Permanent -> bounced_hard (suppress), Transient -> bounced_soft,
  Undetermined -> bounced_undetermined (the sub-type goes into the detail);
- Complaint -> complained (suppress); Reject, Rendering Failure -> rejected;
- Subscription: unsubscribeAll -> unsubscribed (suppress), otherwise resubscribed;
- Open, Click -> opened, clicked; anything else -> unknown (new fields are ignored).

The event's id is a keyed hash of (SES message id, event type, event time, recipient):
the same record arriving twice (SNS retries, or both the queue and HTTPS configured)
is stored once, and the id reveals no address.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from nurture.errors import MalformedEvent
from nurture.providers.base import NormalizedEvent, delivery_ref
from nurture.redaction import scrub
from nurture.store.models import ConsentKind, EventKind
from nurture.tokens import event_digest

PROVIDER = "ses"
DELIVERY_TAG = "delivery_id"  # the one EmailTag the transport sets on every email
MAX_DETAIL = 500
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)

_BOUNCES = {
    "permanent": (EventKind.BOUNCED_HARD, ConsentKind.BOUNCE),
    "transient": (EventKind.BOUNCED_SOFT, None),
    "undetermined": (EventKind.BOUNCED_UNDETERMINED, None),
}
_SIMPLE = {
    "send": EventKind.ACCEPTED,
    "delivery": EventKind.DELIVERED,
    "deliverydelay": EventKind.DEFERRED,
    "reject": EventKind.REJECTED,
    "rendering failure": EventKind.REJECTED,
    "renderingfailure": EventKind.REJECTED,
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "complaint": EventKind.COMPLAINED,
}


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(*candidates: Any) -> datetime:
    for value in candidates:
        if isinstance(value, str) and value.strip():
            try:
                moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise MalformedEvent("no event time")


def _text(parts: list[tuple[str, Any]]) -> str | None:
    kept = []
    for name, value in parts:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue
        text = " ".join(_CONTROL.sub(" ", scrub(str(value))).split())
        if text:
            kept.append(f"{name}={text}")
    if not kept:
        return None
    joined = "; ".join(kept)
    return joined if len(joined) <= MAX_DETAIL else joined[: MAX_DETAIL - 1] + "…"


def _delivery_ref(mail: Mapping[str, Any]) -> str | None:
    values = _object(mail.get("tags")).get(DELIVERY_TAG)
    return delivery_ref(values[0] if isinstance(values, list) and values else values)


def _addresses(items: Any, key: str = "emailAddress") -> list[tuple[str, Mapping[str, Any]]]:
    found: list[tuple[str, Mapping[str, Any]]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            found.append((item, {}))
        elif isinstance(item, dict) and isinstance(item.get(key), str):
            found.append((item[key], item))
    return found


def normalize_record(record: Any, secret: str) -> list[NormalizedEvent]:
    """The events one SES record stands for (one per recipient), or MalformedEvent."""
    if not isinstance(record, dict):
        raise MalformedEvent("not a JSON object")
    name = record.get("eventType") or record.get("notificationType")
    if not isinstance(name, str) or not name.strip() or _CONTROL.search(name):
        raise MalformedEvent("no eventType")
    mail = _object(record.get("mail"))
    message_id = mail.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip() or _CONTROL.search(message_id):
        raise MalformedEvent("no mail.messageId")
    lowered = name.strip().lower()
    # The record's own section: "bounce", "complaint", "delivery", "deliveryDelay", ...
    section_name = {"rendering failure": "failure", "deliverydelay": "deliveryDelay"}.get(lowered, lowered)
    section = _object(record.get(section_name))
    suppress: ConsentKind | None = None
    destination = mail.get("destination")
    recipients = _addresses(destination)
    detail_fields: list[tuple[str, Any]] = []
    if lowered == "bounce":
        bounce_type = str(section.get("bounceType", "")).strip().lower()
        kind, suppress = _BOUNCES.get(bounce_type, (EventKind.BOUNCED_UNDETERMINED, None))
        recipients = _addresses(section.get("bouncedRecipients")) or recipients
        detail_fields = [
            ("bounceType", section.get("bounceType")),
            ("bounceSubType", section.get("bounceSubType")),
        ]
    elif lowered == "complaint":
        kind, suppress = EventKind.COMPLAINED, ConsentKind.COMPLAINT
        recipients = _addresses(section.get("complainedRecipients")) or recipients
        detail_fields = [("feedbackType", section.get("complaintFeedbackType"))]
    elif lowered == "subscription":
        preferences = _object(section.get("newTopicPreferences"))
        if preferences.get("unsubscribeAll") is True:
            kind, suppress = EventKind.UNSUBSCRIBED, ConsentKind.UNSUBSCRIBE
        else:
            kind = EventKind.RESUBSCRIBED
    else:
        kind = _SIMPLE.get(lowered, EventKind.UNKNOWN)
        if lowered == "delivery":
            recipients = _addresses(section.get("recipients")) or recipients
            detail_fields = [("smtpResponse", section.get("smtpResponse"))]
        elif lowered == "deliverydelay":
            recipients = _addresses(section.get("delayedRecipients")) or recipients
            detail_fields = [("delayType", section.get("delayType"))]
        elif lowered in ("reject", "rendering failure", "renderingfailure"):
            detail_fields = [("reason", section.get("reason") or section.get("errorMessage"))]
        elif lowered == "click":
            detail_fields = [("link", section.get("link"))]
    occurred_at = _time(section.get("timestamp"), mail.get("timestamp"))
    delivery_ref = _delivery_ref(mail)
    if not recipients:
        recipients = [("", {})]
    events = []
    for address, item in recipients:
        fields = list(detail_fields)
        if item:
            fields += [("status", item.get("status")), ("diagnosticCode", item.get("diagnosticCode"))]
        canonical = json.dumps(
            [message_id.strip(), lowered, occurred_at.isoformat(), address.strip().lower()],
            ensure_ascii=False,
        )
        events.append(
            NormalizedEvent(
                provider_event_id="ses:" + event_digest(secret, canonical),
                kind=kind,
                raw_event=name.strip()[:40],
                delivery_ref=delivery_ref,
                stream=None,
                step=None,
                occurred_at=occurred_at.astimezone(UTC),
                detail=_text(fields),
                suppress=suppress,
                email=address.strip() or None,
            )
        )
    return events
