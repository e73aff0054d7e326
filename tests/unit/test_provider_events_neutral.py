"""SES records, SNS envelopes and RFC 3464 bounces, each in the neutral vocabulary (memory only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from nurture.errors import MalformedEvent, WebhookRejected
from nurture.providers.ses import sns
from nurture.providers.ses.events import normalize_record
from nurture.providers.smtp.bounces import normalize_bounce
from nurture.providers.smtp.transport import verp_address
from nurture.store.models import ConsentKind, EventKind
from nurture.tokens import bounce_tag
from tests.support.aws import ses_record
from tests.support.dsn import auto_reply, dsn

SECRET = "unit-test-secret-key-0123456789"
OLD_SECRET = "previous-secret-key-0123456789"
TOPIC = "arn:aws:sns:us-east-1:123456789012:nurture-ses-events"
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event_type", "section", "kind", "suppress"),
    [
        ("Send", {}, EventKind.ACCEPTED, None),
        ("Delivery", {}, EventKind.DELIVERED, None),
        ("DeliveryDelay", {"delayType": "MailboxFull"}, EventKind.DEFERRED, None),
        (
            "Bounce",
            {"bounceType": "Permanent", "bounceSubType": "General"},
            EventKind.BOUNCED_HARD,
            ConsentKind.BOUNCE,
        ),
        ("Bounce", {"bounceType": "Transient", "bounceSubType": "MailboxFull"}, EventKind.BOUNCED_SOFT, None),
        ("Bounce", {"bounceType": "Undetermined"}, EventKind.BOUNCED_UNDETERMINED, None),
        ("Complaint", {"complaintFeedbackType": "abuse"}, EventKind.COMPLAINED, ConsentKind.COMPLAINT),
        ("Reject", {"reason": "Bad content"}, EventKind.REJECTED, None),
        ("Rendering Failure", {"errorMessage": "x"}, EventKind.REJECTED, None),
        (
            "Subscription",
            {"newTopicPreferences": {"unsubscribeAll": True}},
            EventKind.UNSUBSCRIBED,
            ConsentKind.UNSUBSCRIBE,
        ),
        ("Subscription", {"newTopicPreferences": {"unsubscribeAll": False}}, EventKind.RESUBSCRIBED, None),
        ("Open", {}, EventKind.OPENED, None),
        ("Click", {"link": "https://example.org/u/secret-token"}, EventKind.CLICKED, None),
        ("SomethingNew", {}, EventKind.UNKNOWN, None),
    ],
)
def test_each_ses_record_type_in_neutral_terms(
    event_type: str, section: dict[str, object], kind: EventKind, suppress: ConsentKind | None
) -> None:
    [event] = normalize_record(
        ses_record(event_type, 42, ["reader@example.com"], when=NOW, **section), SECRET
    )
    assert (event.kind, event.suppress, event.delivery_ref) == (kind, suppress, "42")
    assert event.raw_event == event_type
    assert event.occurred_at == NOW
    assert "reader@example.com" not in event.provider_event_id and "reader" not in (event.detail or "")


def test_one_record_naming_two_recipients_is_two_events_with_their_own_ids() -> None:
    record = ses_record("Bounce", 7, ["a@example.com", "b@example.com"], when=NOW, bounceType="Permanent")
    events = normalize_record(record, SECRET)
    assert [event.email for event in events] == ["a@example.com", "b@example.com"]
    assert len({event.provider_event_id for event in events}) == 2
    assert normalize_record(record, SECRET)[0].provider_event_id == events[0].provider_event_id, "stable ids"


def test_records_ses_would_never_send_are_malformed() -> None:
    with pytest.raises(MalformedEvent):
        normalize_record({"eventType": "Send"}, SECRET)
    with pytest.raises(MalformedEvent):
        normalize_record(["not", "a", "record"], SECRET)
    no_tag = ses_record("Send", None, ["a@example.com"], when=NOW)
    assert normalize_record(no_tag, SECRET)[0].delivery_ref is None


def envelope(**fields: object) -> bytes:
    data = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": TOPIC,
        "Message": "{}",
        "Timestamp": NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SignatureVersion": "1",
        "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    }
    data.update(fields)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"TopicArn": TOPIC.replace("nurture", "other")}, "another topic"),
        ({"Timestamp": (NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}, "retry hour"),
        ({"SignatureVersion": "3"}, "SignatureVersion"),
        ({"SigningCertURL": "https://sns.us-east-1.amazonaws.com.evil.example/x.pem"}, "SNS host"),
        ({"SigningCertURL": "http://sns.us-east-1.amazonaws.com/x.pem"}, "SNS host"),
        (
            {"SigningCertURL": "https://sns.eu-west-1.amazonaws.com/x.pem"},
            "SNS host",
        ),  # not the topic's region
        ({"Type": "Something"}, "message type"),
    ],
)
def test_sns_messages_are_refused_before_any_certificate_is_fetched(
    fields: dict[str, object], reason: str
) -> None:
    # A unit test: the I/O guard fails it if anything opened a socket.
    with pytest.raises(WebhookRejected, match=reason) as caught:
        sns.verify(envelope(**fields), TOPIC, NOW)
    assert caught.value.status == 403


def test_without_a_configured_topic_nothing_is_accepted() -> None:
    with pytest.raises(WebhookRejected, match="sns_topic_arn"):
        sns.verify(envelope(), None, NOW)


def test_dsns_hard_soft_delayed_and_not_ours() -> None:
    to = verp_address("42", "bounces.example.org", SECRET)
    [hard] = normalize_bounce(dsn(to, "a@example.com", "5.1.1"), [SECRET], NOW)
    assert (hard.kind, hard.suppress, hard.delivery_ref) == (EventKind.BOUNCED_HARD, ConsentKind.BOUNCE, "42")
    [soft] = normalize_bounce(dsn(to, "a@example.com", "4.2.2"), [SECRET], NOW)
    assert (soft.kind, soft.suppress) == (EventKind.BOUNCED_SOFT, None)
    [late] = normalize_bounce(dsn(to, "a@example.com", "4.4.7", action="delayed"), [SECRET], NOW)
    assert late.kind == EventKind.DEFERRED
    # Signed with the previous key (before a rotation): still ours.
    old = verp_address("43", "bounces.example.org", OLD_SECRET)
    assert (
        normalize_bounce(dsn(old, "b@example.com", "5.1.1"), [SECRET, OLD_SECRET], NOW)[0].delivery_ref
        == "43"
    )
    with pytest.raises(MalformedEvent, match="names no delivery"):
        normalize_bounce(dsn(old, "b@example.com", "5.1.1"), [SECRET], NOW)
    with pytest.raises(MalformedEvent, match="not a delivery status"):
        normalize_bounce(auto_reply(to), [SECRET], NOW)


def test_a_dsn_found_by_the_returned_message_id() -> None:
    raw = dsn(
        "postmaster@example.org", "c@example.com", "5.1.1", original_message_id="<1.44.abc@example.org>"
    )
    with pytest.raises(MalformedEvent):
        normalize_bounce(raw, [SECRET], NOW)  # a made-up tag
    good = f"<17.44.{bounce_tag(SECRET, '44')}@example.org>"
    raw = dsn("postmaster@example.org", "c@example.com", "5.1.1", original_message_id=good)
    assert normalize_bounce(raw, [SECRET], NOW)[0].delivery_ref == "44"


def test_bounces_and_ses_records_name_an_email_by_its_message_key() -> None:
    """What the transports send today is the message key (never reused), not the row id."""
    key = "k0123456789abcdef-42"
    to = verp_address(key, "bounces.example.org", SECRET)
    [hard] = normalize_bounce(dsn(to, "a@example.com", "5.1.1"), [SECRET], NOW)
    assert hard.delivery_ref == key
    good = f"<17.{key}.{bounce_tag(SECRET, key)}@example.org>"
    raw = dsn("postmaster@example.org", "c@example.com", "5.1.1", original_message_id=good)
    assert normalize_bounce(raw, [SECRET], NOW)[0].delivery_ref == key
    [event] = normalize_record(ses_record("Delivery", key, ["reader@example.com"], when=NOW), SECRET)
    assert event.delivery_ref == key
