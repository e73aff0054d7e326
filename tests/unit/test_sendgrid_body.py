"""The request body written as JSON text equals the body a plain dict would give.

`encode_request_body` writes the JSON itself, a personalization at a time, for speed.
This checks it against a reference built the obvious way (nested dicts through
json.dumps) for arbitrary text: quotes, backslashes, control characters, non-ASCII
and astral characters in names, subjects, headers and substitutions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture.providers.base import Batch, Envelope, Sender, ascii_address
from nurture.providers.sendgrid.body import build_request_body, encode_request_body, tracking_settings

text = st.text(min_size=0, max_size=30)
some_text = st.text(min_size=1, max_size=30)
values = st.dictionaries(some_text, st.one_of(text, st.integers()), max_size=4)


def reference(batch: Batch, tracking: Any = "off", sandbox_mode: bool = False) -> dict[str, Any]:
    """The body, built the obvious way."""
    personalizations = []
    for env in batch.envelopes:
        to = {"email": ascii_address(env.to_email)}
        if env.to_name:
            to["name"] = env.to_name
        p: dict[str, Any] = {"to": [to], "subject": env.subject}
        for name, mapping in (("headers", env.headers), ("substitutions", env.substitutions)):
            if mapping:
                p[name] = {str(k): str(v) for k, v in mapping.items()}
        opaque = {k: str(v) for k, v in env.custom_args.items() if k == "delivery_id"}
        if opaque:
            p["custom_args"] = opaque
        personalizations.append(p)
    sender: dict[str, str] = {"email": batch.sender.from_email}
    if batch.sender.from_name:
        sender["name"] = batch.sender.from_name
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": sender,
        "content": [
            {"type": t, "value": v} for t, v in (("text/plain", batch.text), ("text/html", batch.html)) if v
        ],
        "tracking_settings": tracking_settings(tracking),
    }
    if batch.sender.reply_to:
        body["reply_to"] = {"email": batch.sender.reply_to}
    if batch.categories:
        body["categories"] = list(dict.fromkeys(batch.categories))
    if sandbox_mode:
        body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return body


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    count = draw(st.integers(min_value=1, max_value=5))
    envelopes = [
        Envelope(
            delivery_id=str(number),
            to_email=f"reader{number}@{draw(st.sampled_from(['example.org', 'bücher.example']))}",
            to_name=draw(st.one_of(st.none(), text)),
            subject=draw(text),
            headers=draw(values),
            substitutions=draw(values),
            custom_args=draw(
                st.dictionaries(st.sampled_from(["delivery_id", "campaign", "email"]), some_text, max_size=3)
            ),
        )
        for number in range(count)
    ]
    return Batch(
        sender=Sender(
            draw(some_text) + "@example.org", draw(text), reply_to=draw(st.one_of(st.none(), some_text))
        ),
        text=draw(some_text),
        html=draw(text),
        envelopes=envelopes,
        categories=tuple(draw(st.lists(st.text(min_size=1, max_size=10), max_size=3))),
    )


def effective(body: dict[str, Any]) -> dict[str, Any]:
    """Each personalization as SendGrid reads it: the message-level subject and headers
    apply to every personalization, which may set its own."""
    body = dict(body)
    subject = body.pop("subject", None)
    headers = body.pop("headers", {})
    personalizations = []
    for p in body["personalizations"]:
        merged = {"to": p["to"], "subject": p.get("subject", subject)}
        if {**headers, **p.get("headers", {})}:
            merged["headers"] = {**headers, **p.get("headers", {})}
        merged.update({k: v for k, v in p.items() if k not in ("to", "subject", "headers")})
        personalizations.append(merged)
    body["personalizations"] = personalizations
    return body


@given(batches(), st.sampled_from(["off", "aggregate", "per_person"]), st.booleans())
def test_encoded_body_equals_the_reference(batch: Batch, tracking: Any, sandbox: bool) -> None:
    encoded = encode_request_body(batch, tracking=tracking, sandbox_mode=sandbox)
    assert encoded.isascii()  # every non-ASCII character escaped, as json.dumps does by default
    assert effective(json.loads(encoded)) == reference(batch, tracking, sandbox)
    assert build_request_body(batch, tracking=tracking, sandbox_mode=sandbox) == json.loads(encoded)


def test_only_the_delivery_id_leaves_in_custom_args() -> None:
    envelope = Envelope(
        "7",
        "a@example.org",
        None,
        "Hi",
        custom_args={"delivery_id": "7", "campaign": "kap-intro", "email": "a@example.org"},
    )
    body = build_request_body(Batch(Sender("x@example.org", "X"), "t", "", [envelope]))
    assert body["personalizations"][0]["custom_args"] == {"delivery_id": "7"}


def test_a_none_value_is_refused_naming_the_delivery_not_the_address() -> None:
    envelope = Envelope("9", "someone@example.org", None, "Hi", substitutions={"-x-": None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="delivery 9") as caught:
        encode_request_body(Batch(Sender("x@example.org", "X"), "t", "", [envelope]))
    assert "someone" not in str(caught.value)


def test_what_every_envelope_shares_is_written_once_at_the_top() -> None:
    one_click = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    envelopes = [
        Envelope(
            str(n),
            f"r{n}@example.org",
            None,
            "Week 1",
            headers={"List-Unsubscribe": f"<https://x.example/u/{n}>", **one_click},
        )
        for n in range(3)
    ]
    body = build_request_body(Batch(Sender("x@example.org", "X"), "t", "", envelopes))
    assert body["subject"] == "Week 1" and body["headers"] == one_click
    assert [p["headers"] for p in body["personalizations"]] == [
        {"List-Unsubscribe": f"<https://x.example/u/{n}>"} for n in range(3)
    ]
    assert all("subject" not in p for p in body["personalizations"])
    # Subjects that differ stay with their personalization.
    mixed = [envelopes[0], envelopes[1]._replace(subject="Week 2")]
    body = build_request_body(Batch(Sender("x@example.org", "X"), "t", "", mixed))
    assert "subject" not in body and [p["subject"] for p in body["personalizations"]] == ["Week 1", "Week 2"]
