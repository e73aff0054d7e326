"""The v3 mail/send request body for a batch: one personalization per envelope.

The body is written straight to JSON text, a personalization at a time, with the C
string encoder json.dumps uses (`encode_basestring_ascii`): for a thousand
personalizations that is several times faster than building nested dicts and handing
them to json.dumps, and a sending pass makes one body per thousand emails. The text
is the same JSON json.dumps would write (ASCII only, every non-ASCII character
escaped), without the spaces. `build_request_body` gives it back as a dict, for
tests and for anyone who wants to look. A subject or header that every envelope
has alike is written once, at the top of the request.

What SendGrid learns is the email itself and nothing more: custom_args carry only
the opaque ids named in OPAQUE_CUSTOM_ARGS, recipient domains go out in their ASCII
(IDNA) form, and every body sets tracking_settings from `delivery.tracking`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from nurture.providers.base import Batch, ascii_address

MAX_PERSONALIZATIONS = 1000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255
OPAQUE_CUSTOM_ARGS = ("delivery_id",)  # every other custom arg stays home
Tracking = Literal["off", "aggregate", "per_person"]

_json = encode_basestring_ascii


def tracking_settings(tracking: Tracking) -> dict[str, Any]:
    """SendGrid's tracking_settings for a `delivery.tracking` mode.

    aggregate and per_person ask SendGrid for the same events; they differ in what the
    webhook keeps (nurture/provider_events.py). Links in the plain-text part are never rewritten,
    and SendGrid's own unsubscribe footer is always off (ours is in the layout).
    """
    on = tracking != "off"
    return {
        "click_tracking": {"enable": on, "enable_text": False},
        "open_tracking": {"enable": on},
        "subscription_tracking": {"enable": False},
    }


def _object(values: Mapping[str, Any], delivery_id: str, what: str) -> str:
    """A JSON object of strings: SendGrid refuses any other value type there."""
    parts = []
    for key, value in values.items():
        if value is None:
            raise ValueError(f"delivery {delivery_id}: {what}[{key!r}] is None; SendGrid needs strings")
        parts.append(f"{_json(str(key))}:{_json(value if type(value) is str else str(value))}")
    return "{" + ",".join(parts) + "}"


def _shared(batch: Batch, sandbox_mode: bool, tracking: Tracking) -> str:
    """Everything after the personalizations, as JSON members (from, content, settings)."""
    sender = batch.sender
    from_: dict[str, str] = {"email": sender.from_email}
    if sender.from_name:
        from_["name"] = sender.from_name
    content = [
        {"type": mime, "value": value}
        for mime, value in (("text/plain", batch.text), ("text/html", batch.html))
        if value
    ]
    if not content:
        raise ValueError("a batch needs a text or an HTML body")
    shared: dict[str, Any] = {
        "from": from_,
        "content": content,
        "tracking_settings": tracking_settings(tracking),
    }
    if sender.reply_to:
        shared["reply_to"] = {"email": sender.reply_to}
    if batch.categories:
        categories = list(dict.fromkeys(str(c) for c in batch.categories))
        if len(categories) > MAX_CATEGORIES:
            raise ValueError(f"SendGrid takes at most {MAX_CATEGORIES} categories; got {len(categories)}")
        for c in categories:
            if not c or len(c) > MAX_CATEGORY_LENGTH:
                raise ValueError(f"a category must be 1 to {MAX_CATEGORY_LENGTH} characters: {c[:40]!r}")
        shared["categories"] = categories
    if sandbox_mode:
        shared["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return json.dumps(shared, separators=(",", ":"))[1:-1]


def encode_request_body(batch: Batch, *, sandbox_mode: bool = False, tracking: Tracking = "off") -> bytes:
    """The body as UTF-8 JSON bytes (ASCII in fact), ready to post.

    Raises ValueError, naming delivery ids and never an address, for a batch SendGrid
    would refuse as a whole: empty, too large, an empty or repeated address, a None value.
    """
    envelopes = batch.envelopes
    if not envelopes:
        raise ValueError("a batch needs at least one envelope")
    if len(envelopes) > MAX_PERSONALIZATIONS:
        raise ValueError(
            f"a SendGrid request takes at most {MAX_PERSONALIZATIONS} "
            f"recipients; this batch has {len(envelopes)}"
        )
    shared = _shared(batch, sandbox_mode, tracking)
    # What every envelope has alike goes once at the top (SendGrid applies a message-level
    # subject and headers to every personalization that does not set its own): a step's
    # subject and List-Unsubscribe-Post. A smaller request for the same messages.
    first = envelopes[0]
    subject_for_all = first.subject if all(env.subject == first.subject for env in envelopes) else None
    headers_for_all = dict(first.headers)
    for env in envelopes:
        if not headers_for_all:
            break
        for name in [name for name, value in headers_for_all.items() if env.headers.get(name) != value]:
            del headers_for_all[name]
    if subject_for_all is not None:
        shared += ',"subject":' + _json(subject_for_all)
    if headers_for_all:
        shared += ',"headers":' + _object(headers_for_all, first.delivery_id, "headers")
    seen: dict[str, str] = {}
    personalizations = []
    for (
        delivery_id,
        to_email,
        to_name,
        env_subject,
        headers,
        substitutions,
        custom_args,
        _,
        _,
    ) in envelopes:  # unpacked: cheaper than attributes
        if not to_email:
            raise ValueError(f"delivery {delivery_id}: empty recipient address")
        key = to_email.strip().lower()
        if key in seen:
            # No address in the message: it may end up in a log.
            raise ValueError(
                f"deliveries {seen[key]} and {delivery_id} share a recipient address; "
                "SendGrid rejects a request that names an address twice"
            )
        seen[key] = delivery_id
        to = _json(ascii_address(to_email))
        if to_name:
            to += ',"name":' + _json(to_name)
        text = '{"to":[{"email":' + to + "}]"
        if subject_for_all is None:
            text += ',"subject":' + _json(env_subject)
        if headers_for_all:
            headers = {name: value for name, value in headers.items() if name not in headers_for_all}
        if headers:
            text += ',"headers":' + _object(headers, delivery_id, "headers")
        if substitutions:
            text += ',"substitutions":' + _object(substitutions, delivery_id, "substitutions")
        opaque = {key: value for key, value in custom_args.items() if key in OPAQUE_CUSTOM_ARGS}
        if opaque:
            text += ',"custom_args":' + _object(opaque, delivery_id, "custom_args")
        personalizations.append(text + "}")
    return ('{"personalizations":[' + ",".join(personalizations) + "]," + shared + "}").encode("ascii")


def build_request_body(
    batch: Batch, *, sandbox_mode: bool = False, tracking: Tracking = "off"
) -> dict[str, Any]:
    """The same body as a dict: exactly what `encode_request_body` sends, read back."""
    body: dict[str, Any] = json.loads(
        encode_request_body(batch, sandbox_mode=sandbox_mode, tracking=tracking)
    )
    return body
