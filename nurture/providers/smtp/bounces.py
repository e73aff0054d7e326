"""Bounce mail in our terms: RFC 3464 delivery status notifications, read with the `email` package.

A DSN comes back to the envelope sender the transport used, `bounces+ID-TAG@domain`
(VERP), so it names its delivery without any parsing of free text; TAG must match the
delivery id under NURTURE_SECRET_KEY (or a previous key), or the mail is not a bounce
of ours and changes nothing. The delivery is found in the DSN's addressing headers
(To, Delivered-To, X-Original-To) or, failing that, in the returned message's
Message-ID (`<nurture...ID.TAG@...>`), which carries the same pair.

Per recipient block of the `message/delivery-status` part:

- Action failed, Status 5.x.x: bounced_hard (the person is suppressed);
- Action failed, Status 4.x.x: bounced_soft (kept, not suppressed);
- Action delayed: deferred; delivered / relayed / expanded: delivered;
- a failure without a usable Status: bounced_undetermined.

The event id is a keyed hash of (the DSN's Message-ID or its bytes, recipient, status):
reading the same mailbox twice stores nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from nurture.errors import MalformedEvent
from nurture.providers.base import NormalizedEvent, delivery_ref
from nurture.redaction import scrub
from nurture.store.models import ConsentKind, EventKind
from nurture.tokens import bounce_tag, event_digest

PROVIDER = "smtp"
MAX_DETAIL = 500
# The delivery part is a message key (k<16 hex>-<digits>) or, for an email sent before
# message keys, a row id.
_VERP = re.compile(r"bounces\+(k[0-9a-f]{16}-[0-9]{1,19}|[0-9]{1,19})-([0-9a-f]{12})@", re.IGNORECASE)
_MESSAGE_ID = re.compile(
    r"<[^<>]*?\.(k[0-9a-f]{16}-[0-9]{1,19}|[0-9]{1,19})\.([0-9a-f]{12})@[^<>]+>", re.IGNORECASE
)
_STATUS = re.compile(r"([245])\.[0-9]{1,3}\.[0-9]{1,3}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _checked(delivery_id: str, tag: str, keys: Sequence[str]) -> str | None:
    for key in keys:
        if hmac.compare_digest(bounce_tag(key, delivery_id.lower()), tag.lower()):
            return delivery_ref(delivery_id.lower())
    return None


def _delivery(message: Message, keys: Sequence[str]) -> str | None:
    """The delivery a bounce names: from its VERP address, else the returned Message-ID."""
    for header in ("To", "Delivered-To", "X-Original-To", "Envelope-To"):
        for value in message.get_all(header) or []:
            for _, address in getaddresses([str(value)]):
                match = _VERP.search(address)
                if match:
                    found = _checked(match.group(1), match.group(2), keys)
                    if found is not None:
                        return found
    for part in message.walk():
        if part.get_content_type() in ("text/rfc822-headers", "message/rfc822"):
            text = _payload_text(part)
            for line in text.splitlines():
                if line.lower().startswith("message-id:"):
                    match = _MESSAGE_ID.search(line)
                    if match:
                        return _checked(match.group(1), match.group(2), keys)
    return None


def _payload_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n".join(str(item) for item in payload)
    raw = part.get_payload(decode=True)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(payload)


def _status_blocks(message: Message) -> list[Message]:
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                return [block for block in payload if isinstance(block, Message)]
    return []


def _field(block: Message, name: str) -> str:
    value = block.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _detail(parts: list[tuple[str, str]]) -> str | None:
    kept = [f"{name}={' '.join(_CONTROL.sub(' ', scrub(value)).split())}" for name, value in parts if value]
    if not kept:
        return None
    text = "; ".join(kept)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def is_report(message: Message) -> bool:
    return message.get_content_type() == "multipart/report" and (
        str(message.get_param("report-type", "")).lower() == "delivery-status"
    )


def normalize_bounce(raw: bytes, keys: Sequence[str], received_at: datetime) -> list[NormalizedEvent]:
    """The events one bounce mail stands for (one per recipient block), or MalformedEvent when
    it is not an RFC 3464 report of ours. `keys`: the secret keys, current first."""
    message: Message = message_from_bytes(raw, policy=policy.compat32)
    if not is_report(message):
        raise MalformedEvent(
            "not a delivery status notification (multipart/report; report-type=delivery-status)"
        )
    blocks = _status_blocks(message)
    if len(blocks) < 2:
        raise MalformedEvent("a delivery status notification without recipient blocks")
    delivery = _delivery(message, keys)
    if delivery is None:
        raise MalformedEvent("a bounce that names no delivery of ours (no VERP address with a valid tag)")
    try:
        occurred_at = parsedate_to_datetime(str(message.get("Date", ""))).astimezone(UTC)
    except (TypeError, ValueError, IndexError):
        occurred_at = received_at
    reference = str(message.get("Message-ID") or "").strip() or hashlib.sha256(raw).hexdigest()
    events = []
    for block in blocks[1:]:  # the first block is about the message; one per recipient follows
        action = _field(block, "Action").lower()
        status = _field(block, "Status")
        recipient = _field(block, "Final-Recipient") or _field(block, "Original-Recipient")
        address = recipient.split(";", 1)[1].strip() if ";" in recipient else recipient.strip()
        match = _STATUS.search(status)
        suppress = None
        if action == "delayed":
            kind = EventKind.DEFERRED
        elif action in ("delivered", "relayed", "expanded"):
            kind = EventKind.DELIVERED
        elif match is None:
            kind = EventKind.BOUNCED_UNDETERMINED
        elif match.group(1) == "5":
            kind, suppress = EventKind.BOUNCED_HARD, ConsentKind.BOUNCE
        elif match.group(1) == "4":
            kind = EventKind.BOUNCED_SOFT
        else:
            kind = EventKind.DELIVERED
        canonical = f"{reference}\n{address.lower()}\n{status}\n{action}"
        events.append(
            NormalizedEvent(
                provider_event_id="dsn:" + event_digest(keys[0], canonical),
                kind=kind,
                raw_event=f"dsn {action or 'unknown'}"[:40],
                delivery_ref=delivery,
                stream=None,
                step=None,
                occurred_at=occurred_at,
                detail=_detail(
                    [
                        ("status", status),
                        ("diagnostic", _field(block, "Diagnostic-Code")),
                        ("mta", _field(block, "Remote-MTA")),
                    ]
                ),
                suppress=suppress,
                email=address or None,
            )
        )
    return events
