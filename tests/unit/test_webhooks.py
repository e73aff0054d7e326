"""nurture.providers.sendgrid.event_webhook: signature checks and normalization of every SendGrid event
(storing a batch: the webhook store tests)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from nurture.errors import MalformedEvent, WebhookRejected
from nurture.providers.base import NormalizedEvent
from nurture.providers.sendgrid import event_webhook as wh
from nurture.redaction import scrub
from nurture.store import models as m
from tests.support.factories import SECRET, memory_config
from tests.support.webserver import WebhookSigner


def normalize(event: object) -> NormalizedEvent:
    return wh.normalize(event, SECRET)


# SendGrid's own test vector (sendgrid-python test/unit/test_eventwebhook.py): a real
# signature from SendGrid's key, over a body that ends in CRLF.
SG_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw"
    "+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
)
SG_TIMESTAMP = "1600112502"
SG_PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
)
SG_SIGNED_AT = datetime.fromtimestamp(int(SG_TIMESTAMP), UTC)
SG_HEADERS = {
    "X-Twilio-Email-Event-Webhook-Signature": SG_SIGNATURE,
    "X-Twilio-Email-Event-Webhook-Timestamp": SG_TIMESTAMP,
}


def base(event: str, **fields):
    data = {
        "email": "reader@example.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "category": "cat facts",
        "sg_event_id": f"sg-{event}-1",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "delivery_id": "42",
        "campaign": "kap-intro",
        "step": "2",
    }
    data.update(fields)
    return data


# ---------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    ("event", "fields", "kind", "suppress", "detail"),
    [
        ("processed", {}, "accepted", None, None),
        ("delivered", {"response": "250 OK"}, "delivered", None, "response=250 OK"),
        (
            "deferred",
            {"response": "400 try again later", "attempt": "5"},
            "deferred",
            None,
            "response=400 try again later; attempt=5",
        ),
        (
            "bounce",
            {
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 The email account does not exist",
                "bounce_classification": "Invalid Address",
            },
            "bounced_hard",
            m.ConsentKind.BOUNCE,
            "type=bounce; bounce_classification=Invalid Address; status=5.1.1; "
            "reason=550 5.1.1 The email account does not exist",
        ),
        (
            "bounce",
            {"type": "blocked", "status": "5.7.1", "reason": "550 blocked by policy"},
            "bounced_soft",
            None,
            "type=blocked; status=5.7.1; reason=550 blocked by policy",
        ),
        ("blocked", {"reason": "blocked"}, "bounced_soft", None, "reason=blocked"),
        (
            "dropped",
            {"reason": "Bounced Address", "status": "5.0.0"},
            "rejected",
            m.ConsentKind.BOUNCE,
            "reason=Bounced Address; status=5.0.0",
        ),
        ("dropped", {"reason": "Invalid"}, "rejected", m.ConsentKind.BOUNCE, "reason=Invalid"),
        (
            "dropped",
            {"reason": "Unsubscribed Address"},
            "rejected",
            m.ConsentKind.UNSUBSCRIBE,
            "reason=Unsubscribed Address",
        ),
        (
            "dropped",
            {"reason": "Spam Reporting Address"},
            "rejected",
            m.ConsentKind.COMPLAINT,
            "reason=Spam Reporting Address",
        ),
        ("dropped", {"reason": "Invalid SMTPAPI header"}, "rejected", None, "reason=Invalid SMTPAPI header"),
        (
            "dropped",
            {"reason": "Spam Content (if spam checker app enabled)"},
            "rejected",
            None,
            "reason=Spam Content (if spam checker app enabled)",
        ),
        (
            "open",
            {"useragent": "Mozilla/4.0", "ip": "255.255.255.255", "sg_machine_open": False},
            "opened",
            None,
            None,
        ),
        (
            "click",
            {
                "useragent": "Mozilla/4.0",
                "ip": "255.255.255.255",
                "url": "https://www.example.com/articles/what-is-kap",
                "url_offset": {"index": 0, "type": "html"},
            },
            "clicked",
            None,
            "url=https://www.example.com/articles/what-is-kap",
        ),
        ("spamreport", {}, "complained", m.ConsentKind.COMPLAINT, None),
        ("unsubscribe", {}, "unsubscribed", m.ConsentKind.UNSUBSCRIBE, None),
        (
            "group_unsubscribe",
            {
                "asm_group_id": 10,
                "useragent": "Mozilla/4.0",
                "ip": "255.255.255.255",
                "url": "http://www.sendgrid.com/",
            },
            "unsubscribed",
            m.ConsentKind.UNSUBSCRIBE,
            None,
        ),
        (
            "group_resubscribe",
            {"asm_group_id": 10, "useragent": "Mozilla/4.0", "ip": "255.255.255.255"},
            "resubscribed",
            None,
            None,
        ),
        ("account_status_change", {"type": "compliance_suspend"}, "unknown", None, None),
    ],
)
def test_every_sendgrid_event_normalizes_to_our_kind(event, fields, kind, suppress, detail):
    item = normalize(base(event, **fields))
    assert item.kind == kind
    assert item.raw_event == event
    assert item.suppress == suppress
    assert item.detail == detail
    assert item.provider_event_id == f"sg-{event}-1"
    assert item.delivery_ref == "42"
    assert item.stream == "kap-intro"
    assert item.step == 2
    assert item.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert item.kind in tuple(m.EventKind)


def test_bounce_without_a_type_is_a_hard_bounce():
    assert normalize(base("bounce", reason="550 no such user")).kind == "bounced_hard"


@pytest.mark.parametrize(
    ("custom", "ref", "stream", "step"),
    [
        ({"delivery_id": "7", "campaign": "newsletter:3", "step": "1"}, "7", "newsletter:3", 1),
        ({"delivery_id": 7, "step": 4}, "7", None, 4),
        ({"delivery_id": "k0123456789abcdef-12"}, "k0123456789abcdef-12", None, None),
        ({"delivery_id": "k0123456789abcdef-12; drop"}, None, None, None),
        ({"delivery_id": "abc", "step": "two"}, None, None, None),
        ({"delivery_id": "-3"}, None, None, None),
        ({"delivery_id": True}, None, None, None),
        ({"delivery_id": "99999999999999999999999"}, None, None, None),
        ({}, None, None, None),
    ],
)
def test_custom_args_are_parsed_or_dropped(custom, ref, stream, step):
    event = {"event": "delivered", "timestamp": 1513299569, "sg_event_id": "x", **custom}
    item = normalize(event)
    assert (item.delivery_ref, item.stream, item.step) == (ref, stream, step)


def test_details_never_hold_an_address_or_a_link_token():
    bounce = normalize(
        base(
            "bounce",
            type="bounce",
            reason="550 5.1.1 <Reader@Example.com>: Recipient address rejected",
            status="5.1.1",
        )
    )
    assert "@" not in bounce.detail and "Reader" not in bounce.detail
    assert "[address]" in bounce.detail
    click = normalize(base("click", url="https://mail.example.com/unsubscribe/eyJhYmMi.c2ln?x=1"))
    assert click.detail == "url=https://mail.example.com/unsubscribe/…?x=1"
    tracked = normalize(base("click", url="https://example.com/a?who=reader%40example.com"))
    assert "reader" not in tracked.detail
    for event in ("processed", "open", "spamreport", "unsubscribe", "account_status_change"):
        assert normalize(base(event)).detail is None  # "email" is never a detail field


def test_long_details_are_truncated():
    item = normalize(base("bounce", type="bounce", reason="x" * 2000))
    assert len(item.detail) == wh.MAX_DETAIL
    assert item.detail.endswith("…")


def test_an_event_without_sg_event_id_gets_a_stable_keyed_id():
    event = {
        "email": "reader@example.com",
        "smtp-id": "<4FB29F5D.5080404@sendgrid.com>",
        "timestamp": 1386636115,
        "reason": "Invalid",
        "event": "dropped",
    }
    first = normalize(event).provider_event_id
    reordered = dict(reversed(list(event.items())))
    assert normalize(reordered).provider_event_id == first
    assert first.startswith("hmac:") and len(first) == 69
    assert normalize({**event, "timestamp": 1386636116}).provider_event_id != first
    # Keyed: without the secret, hashing a guessed address cannot match the stored id.
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() not in first
    assert wh.normalize(event, "another-secret-key-0123456789").provider_event_id != first


def test_an_overlong_sg_event_id_is_hashed_to_fit():
    item = normalize(base("open", sg_event_id="e" * 500))
    assert item.provider_event_id.startswith("sha256:") and len(item.provider_event_id) <= 200


@pytest.mark.parametrize(
    "event",
    [
        "a string",
        ["a", "list"],
        None,
        {"timestamp": 1513299569},
        {"event": "", "timestamp": 1513299569},
        {"event": 5, "timestamp": 1513299569},
        {"event": "open"},
        {"event": "open", "timestamp": "yesterday"},
        {"event": "open", "timestamp": True},
        {"event": "open", "timestamp": -5},
        {"event": "open", "timestamp": 10**20},
        {"event": "open", "timestamp": {"s": 1}},
    ],
)
def test_malformed_events_are_refused_one_by_one(event):
    with pytest.raises(MalformedEvent):
        normalize(event)


def test_scrub_blanks_addresses_and_tokens():
    assert scrub("POST /unsubscribe/abc.def HTTP/1.1") == "POST /unsubscribe/… HTTP/1.1"
    assert scrub("/confirm/abc.def") == "/confirm/…"
    assert scrub("for sam.smith+kap@example.co.uk:") == "for [address]:"
    assert scrub("/subscribe") == "/subscribe"


# ---------------------------------------------------------------- signature


def config_with_key(key):
    return memory_config(environ={"NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY": key} if key else None)


def test_sendgrids_own_signed_payload_verifies():
    config = config_with_key(SG_PUBLIC_KEY)
    assert (
        wh.verify_request(config, SG_PAYLOAD.encode(), SG_HEADERS, SG_SIGNED_AT + timedelta(seconds=30))
        == SG_PAYLOAD
    )
    lower = {k.lower(): v for k, v in SG_HEADERS.items()}
    assert wh.verify_request(config, SG_PAYLOAD.encode(), lower, SG_SIGNED_AT) == SG_PAYLOAD


@pytest.mark.parametrize(
    "skew", [timedelta(minutes=5, seconds=1), timedelta(minutes=-5, seconds=-1), timedelta(days=1)]
)
def test_a_timestamp_more_than_five_minutes_away_is_refused(skew):
    config = config_with_key(SG_PUBLIC_KEY)
    with pytest.raises(WebhookRejected) as caught:
        wh.verify_request(config, SG_PAYLOAD.encode(), SG_HEADERS, SG_SIGNED_AT + skew)
    assert caught.value.status == 403


def test_five_minutes_exactly_is_still_accepted():
    config = config_with_key(SG_PUBLIC_KEY)
    wh.verify_request(config, SG_PAYLOAD.encode(), SG_HEADERS, SG_SIGNED_AT + timedelta(minutes=5))


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (SG_PAYLOAD.replace("Bounced", "Bouncer"), SG_HEADERS),  # body changed
        (SG_PAYLOAD.rstrip(), SG_HEADERS),  # body not byte-exact
        (SG_PAYLOAD, {}),  # unsigned
        (SG_PAYLOAD, {"X-Twilio-Email-Event-Webhook-Timestamp": SG_TIMESTAMP}),  # no signature
        (SG_PAYLOAD, {**SG_HEADERS, "X-Twilio-Email-Event-Webhook-Signature": "not base64!!"}),
        (SG_PAYLOAD, {**SG_HEADERS, "X-Twilio-Email-Event-Webhook-Signature": "AAAA"}),
        (SG_PAYLOAD, {**SG_HEADERS, "X-Twilio-Email-Event-Webhook-Timestamp": "1600112502.5"}),
    ],
)
def test_bad_signatures_are_refused(body, headers):
    config = config_with_key(SG_PUBLIC_KEY)
    with pytest.raises(WebhookRejected) as caught:
        wh.verify_request(config, body.encode(), headers, SG_SIGNED_AT)
    assert caught.value.status == 403


@pytest.mark.parametrize(
    "stamp",
    [
        "999999999999",
        "253402300800",
        "²",
        "٣٠",
        "１６００",
        "-1600112502",
        "0",
        "1e9",
        "",
        "   ",
        "1600112502\x00",
        "9" * 13,
        "0x5f5fc76c",
    ],
)
def test_an_unparsable_or_absurd_timestamp_is_refused_before_the_signature(stamp):
    config = config_with_key(SG_PUBLIC_KEY)
    headers = {**SG_HEADERS, "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    with pytest.raises(WebhookRejected) as caught:
        wh.verify_request(config, SG_PAYLOAD.encode(), headers, SG_SIGNED_AT)
    assert caught.value.status == 403


def test_a_body_that_is_not_utf8_is_refused():
    config = config_with_key(SG_PUBLIC_KEY)
    with pytest.raises(WebhookRejected):
        wh.verify_request(config, b"\xff\xfe[]", SG_HEADERS, SG_SIGNED_AT)


def test_a_signature_from_another_key_is_refused():
    config = config_with_key(SG_PUBLIC_KEY)
    other = WebhookSigner()
    with pytest.raises(WebhookRejected):
        wh.verify_request(
            config, SG_PAYLOAD.encode(), other.headers(SG_PAYLOAD, timestamp=int(SG_TIMESTAMP)), SG_SIGNED_AT
        )


@pytest.mark.parametrize("key", [None, "not a key", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"])
def test_without_a_usable_public_key_everything_is_refused(key):
    config = config_with_key(key)
    with pytest.raises(WebhookRejected) as caught:
        wh.verify_request(config, SG_PAYLOAD.encode(), SG_HEADERS, SG_SIGNED_AT)
    assert caught.value.status == 403
    assert "NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY" in caught.value.reason
    if key:
        assert key not in caught.value.reason


@pytest.mark.parametrize("payload", ["{}", "not json", '{"event": "open"}', "null"])
def test_a_signed_body_that_is_not_an_array_is_a_bad_request(payload):
    with pytest.raises(WebhookRejected) as caught:
        wh.parse_batch(payload)
    assert caught.value.status == 400
