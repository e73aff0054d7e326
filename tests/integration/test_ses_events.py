"""SES events, both ways in: the SQS queue (moto in server mode: the configuration set's
SNS topic with the queue subscribed to it) and SNS over HTTPS to POST /webhooks/ses with
signatures from a test certificate. Either way they settle, suppress and reconcile as
SendGrid's events do; a forged, replayed or foreign-topic message changes nothing."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from nurture.app import App
from nurture.errors import WebhookRejected
from nurture.event_feeds import poll_ses_queue
from nurture.providers.ses import sns
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import handle_ses
from tests.support.aws import CONFIGURATION_SET, REGION, MotoServer, ses_record
from tests.support.factories import active_subscribers, make_app
from tests.support.processes import STEP_TIMES, Project
from tests.support.ses_standin import SesStandIn
from tests.support.sns_signing import SnsSigner
from tests.support.webserver import live_web

TOPIC = "arn:aws:sns:us-east-1:123456789012:nurture-ses-events"


def ses_settings(topic: str, queue_url: str | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "delivery.transport": "ses",
        "delivery.batch_size": 50,
        "ses.region": REGION,
        "ses.configuration_set": CONFIGURATION_SET,
        "ses.sns_topic_arn": topic,
    }
    if queue_url:
        settings["ses.events_queue_url"] = queue_url
    return settings


def by_email(app: App) -> dict[str, tuple[int, str, str]]:
    """address -> (delivery id, delivery status, subscriber status), for step 1."""
    with transaction(app.engine) as session:
        rows = session.execute(
            select(m.Subscriber.email, m.Delivery.id, m.Delivery.status, m.Subscriber.status)
            .join(m.Delivery, m.Delivery.subscriber_id == m.Subscriber.id)
            .where(m.Delivery.step == 1)
        ).all()
    return {email: (delivery_id, status, person) for email, delivery_id, status, person in rows}


def records_for(ses: SesStandIn) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """What SES would publish for the stand-in's accepted emails: Send for each, and a story per person."""
    tags = {message.to_email: message.tags["delivery_id"] for message in ses.messages()}
    records = [ses_record("Send", tag, [email]) for email, tag in tags.items()]
    story = {
        "person1@example.com": ses_record(
            "Bounce",
            tags["person1@example.com"],
            ["person1@example.com"],
            bounceType="Permanent",
            bounceSubType="General",
        ),
        "person2@example.com": ses_record(
            "Bounce",
            tags["person2@example.com"],
            ["person2@example.com"],
            bounceType="Transient",
            bounceSubType="MailboxFull",
        ),
        "person3@example.com": ses_record(
            "Bounce",
            tags["person3@example.com"],
            ["person3@example.com"],
            bounceType="Undetermined",
            bounceSubType="Undetermined",
        ),
        "person4@example.com": ses_record("Complaint", tags["person4@example.com"], ["person4@example.com"]),
        "person6@example.com": ses_record(
            "Subscription",
            tags["person6@example.com"],
            ["person6@example.com"],
            newTopicPreferences={"unsubscribeAll": True},
        ),
        "person7@example.com": ses_record(
            "DeliveryDelay",
            tags["person7@example.com"],
            ["person7@example.com"],
            delayType="TransientCommunicationFailure",
        ),
    }
    records += list(story.values())
    records += [ses_record("Delivery", tags[email], [email]) for email in tags if email not in story]
    return records, tags


@pytest.fixture
def pipeline(moto: MotoServer) -> tuple[str, str]:
    return moto.events_pipeline(visibility_timeout=1)


def test_events_polled_from_the_queue_settle_and_suppress(
    tmp_path: Path, ses: SesStandIn, moto: MotoServer, pipeline: tuple[str, str]
) -> None:
    topic, queue_url = pipeline
    app = make_app(tmp_path, **ses_settings(topic, queue_url))
    active_subscribers(app, 20, STEP_TIMES[0] - timedelta(minutes=5))
    ses.drop_connection_for = {"person5@example.com"}  # SES may have taken it: unknown
    summary = send_due(app, STEP_TIMES[0])
    assert summary.sent == 19
    assert by_email(app)["person5@example.com"][1] == m.DeliveryStatus.CLAIMED

    records, tags = records_for(ses)
    moto.publish(topic, records)
    report = poll_ses_queue(app, lambda: STEP_TIMES[0] + timedelta(minutes=10), wait_seconds=0)
    assert report.received == len(records) and report.malformed == 0
    assert report.stored == len(records)
    assert moto.queue_depth(queue_url) == 0, "every message deleted once stored"

    after = by_email(app)
    assert after["person5@example.com"][1] == m.DeliveryStatus.SENT, (
        "the Send event settles the unknown email"
    )
    assert after["person1@example.com"][2] == "bounced"
    assert after["person4@example.com"][2] == "complained"
    assert after["person6@example.com"][2] == "unsubscribed"
    for email in ("person2@example.com", "person3@example.com", "person7@example.com", "person8@example.com"):
        assert after[email][2] == "active", email
    with transaction(app.engine) as session:
        kinds = Counter(
            session.scalars(select(m.ProviderEvent.kind).where(m.ProviderEvent.provider == "ses"))
        )
        tied = session.scalar(
            select(func.count()).select_from(m.ProviderEvent).where(m.ProviderEvent.delivery_id.is_not(None))
        )
    assert kinds == Counter(
        {
            "accepted": 20,
            "delivered": 14,
            "bounced_hard": 1,
            "bounced_soft": 1,
            "bounced_undetermined": 1,
            "complained": 1,
            "unsubscribed": 1,
            "deferred": 1,
        }
    )
    assert tied == len(records), "each event found its delivery by the tag"

    # The same records again (SNS retries, or HTTPS and the queue both on): stored once.
    moto.publish(topic, records[:5])
    again = poll_ses_queue(app, lambda: STEP_TIMES[0] + timedelta(minutes=20), wait_seconds=0)
    assert (again.received, again.stored, again.duplicates) == (5, 0, 5)

    # The next step leaves out the suppressed.
    before = len(ses.messages())
    send_due(app, STEP_TIMES[1])
    step_two = {message.to_email for message in ses.messages()[before:]}
    assert not step_two & {"person1@example.com", "person4@example.com", "person6@example.com"}
    assert len(step_two) == 17


def test_a_poller_killed_mid_poll_loses_nothing(
    tmp_path: Path, ses: SesStandIn, moto: MotoServer, pipeline: tuple[str, str], aws_env: dict[str, str]
) -> None:
    topic, queue_url = pipeline
    project = Project(
        tmp_path, f"sqlite:///{tmp_path / 'nurture.db'}", None, **ses_settings(topic, queue_url)
    )
    project.env |= aws_env | {"AWS_ENDPOINT_URL_SQS": moto.url, "AWS_ENDPOINT_URL_SESV2": ses.url}
    records = [ses_record("Delivery", 10_000 + n, [f"reader{n}@example.com"]) for n in range(600)]
    moto.publish(topic, records)

    def stored() -> int:
        with transaction(project.app.engine) as session:
            return int(session.scalar(select(func.count()).select_from(m.ProviderEvent)) or 0)

    poller = project.start("events", "poll", "--wait", "0")
    deadline = time.monotonic() + 60
    while stored() == 0 and time.monotonic() < deadline and poller.poll() is None:
        time.sleep(0.005)
    poller.send_signal(signal.SIGKILL)
    poller.communicate(timeout=30)
    assert poller.returncode == -signal.SIGKILL, "killed in mid-poll"
    assert 0 < stored() < 600
    time.sleep(1.5)  # what it received and did not delete is visible again after the timeout
    rest = project.run("events", "poll", "--wait", "1")
    assert rest.returncode == 0, rest.stderr
    assert stored() == 600, "every event stored, none twice"
    assert moto.queue_depth(queue_url) == 0


# ---------------------------------------------------------------- SNS over HTTPS


@pytest.fixture
def signer(tmp_path: Path) -> Iterator[SnsSigner]:
    (tmp_path / "sns").mkdir()
    with SnsSigner(tmp_path / "sns") as server:
        sns.trust_for_tests(server.origin, server.tls_cert)
        yield server
        sns.forget_test_trust()


def test_signed_notifications_over_https_settle_and_suppress(
    tmp_path: Path, ses: SesStandIn, signer: SnsSigner
) -> None:
    with live_web(tmp_path, **ses_settings(TOPIC)) as web:
        active_subscribers(web.app, 10, STEP_TIMES[0] - timedelta(minutes=5))
        ses.drop_connection_for = {"person5@example.com"}
        send_due(web.app, STEP_TIMES[0])
        records, _ = records_for(ses)
        with web.client() as client:
            for number, record in enumerate(records):
                body = signer.notification(TOPIC, record, version="1" if number % 2 else "2", number=number)
                answer = client.post(
                    "/webhooks/ses", content=body, headers={"x-amz-sns-message-type": "Notification"}
                )
                assert answer.status_code == 200, answer.text
        after = by_email(web.app)
    assert after["person5@example.com"][1] == m.DeliveryStatus.SENT
    assert after["person1@example.com"][2] == "bounced"
    assert after["person4@example.com"][2] == "complained"
    assert after["person2@example.com"][2] == "active"
    assert signer.certificate_fetches == 1, "the certificate is fetched once and cached"


def stored_events(app: App) -> int:
    with transaction(app.engine) as session:
        return int(session.scalar(select(func.count()).select_from(m.ProviderEvent)) or 0)


def test_forged_foreign_and_replayed_messages_get_403_and_change_nothing(
    tmp_path: Path, signer: SnsSigner
) -> None:
    app = make_app(tmp_path, **ses_settings(TOPIC))
    now = datetime.now(UTC)
    record = ses_record("Complaint", 1, ["someone@example.com"])
    good = signer.notification(TOPIC, record)
    forged = good.replace(b"Complaint", b"Delivery")  # the signature no longer matches
    other_topic = signer.notification(TOPIC.replace("nurture-ses-events", "someone-else"), record)
    old = signer.notification(TOPIC, record, when=now - timedelta(hours=3))
    wrong_host = good.replace(signer.origin.encode(), b"https://sns.us-east-1.amazonaws.com.evil.example")
    for body in (forged, other_topic, old, wrong_host):
        with pytest.raises(WebhookRejected) as caught:
            handle_ses(app, body, now)
        assert caught.value.status == 403
    assert stored_events(app) == 0
    # The genuine one, twice (SNS's own retry within its hour): 200 both times, stored once.
    assert handle_ses(app, good, now).stored == 1
    assert handle_ses(app, good, now).duplicates == 1
    assert stored_events(app) == 1


def test_a_subscription_is_confirmed_for_the_configured_topic_only(tmp_path: Path, signer: SnsSigner) -> None:
    app = make_app(tmp_path, **ses_settings(TOPIC))
    now = datetime.now(UTC)
    with pytest.raises(WebhookRejected):
        handle_ses(app, signer.confirmation(TOPIC.replace("nurture-ses-events", "other")), now)
    assert signer.confirmations == []
    handle_ses(app, signer.confirmation(TOPIC, version="2"), now)
    assert signer.confirmations == ["/?Action=ConfirmSubscription&Token=token-1"]


def test_production_trusts_only_the_amazonaws_host(tmp_path: Path) -> None:
    """Without the test hook the test server's certificate URL is refused before any fetch."""
    (tmp_path / "sns").mkdir()
    with SnsSigner(tmp_path / "sns") as server:
        app = make_app(tmp_path, **ses_settings(TOPIC))
        with pytest.raises(WebhookRejected, match="SNS host"):
            sns.verify(
                server.notification(TOPIC, ses_record("Send", 1, ["a@example.com"])), TOPIC, datetime.now(UTC)
            )
        assert server.certificate_fetches == 0
        assert app.config.ses.sns_topic_arn == TOPIC
