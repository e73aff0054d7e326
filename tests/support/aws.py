"""AWS for tests: moto in server mode (a real HTTP server in this process, speaking SNS
and SQS), the credentials boto3 finds in the environment, and SES event records shaped
as SES publishes them through a configuration set."""

from __future__ import annotations

import json
import secrets
import socket
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CONFIGURATION_SET = "nurture-events"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIATESTTESTTESTTEST",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key-not-real",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoServer:
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop()

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def events_pipeline(self, *, visibility_timeout: int = 30) -> tuple[str, str]:
        """An SNS topic for SES events and an SQS queue subscribed to it: (topic ARN, queue URL)."""
        sns, sqs = self.client("sns"), self.client("sqs")
        topic = sns.create_topic(Name="nurture-ses-events")["TopicArn"]
        queue_url = sqs.create_queue(
            QueueName="nurture-ses-events",
            Attributes={"VisibilityTimeout": str(visibility_timeout), "MessageRetentionPeriod": "1209600"},
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        return topic, queue_url

    def publish(self, topic: str, records: list[dict[str, Any]]) -> None:
        """Publish SES records to the topic, one SNS message each, as the configuration set does."""
        sns = self.client("sns")
        for record in records:
            sns.publish(TopicArn=topic, Message=json.dumps(record))

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def ses_record(
    event_type: str,
    delivery_id: int | str | None,
    recipients: list[str],
    *,
    when: datetime | None = None,
    message_id: str | None = None,
    **section: Any,
) -> dict[str, Any]:
    """An SES event record (event publishing format) for one email."""
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    tags: dict[str, list[str]] = {
        "ses:configuration-set": [CONFIGURATION_SET],
        "ses:source-ip": ["192.0.2.1"],
    }
    if delivery_id is not None:
        tags["delivery_id"] = [str(delivery_id)]
    record: dict[str, Any] = {
        "eventType": event_type,
        "mail": {
            "timestamp": stamp,
            "source": "clinic@example.org",
            "sendingAccountId": "123456789012",
            "messageId": message_id or f"0100{secrets.token_hex(12)}-000000",
            "destination": recipients,
            "headersTruncated": False,
            "tags": tags,
        },
    }
    key = {"DeliveryDelay": "deliveryDelay", "Rendering Failure": "failure"}.get(
        event_type, event_type[:1].lower() + event_type[1:]
    )
    body = {"timestamp": stamp, **section}
    if event_type == "Bounce":
        body.setdefault("bouncedRecipients", [{"emailAddress": r, "status": "5.1.1"} for r in recipients])
    elif event_type == "Complaint":
        body.setdefault("complainedRecipients", [{"emailAddress": r} for r in recipients])
    elif event_type == "Delivery":
        body.setdefault("recipients", recipients)
        body.setdefault("smtpResponse", "250 2.0.0 OK")
    elif event_type == "DeliveryDelay":
        body.setdefault("delayedRecipients", [{"emailAddress": r, "status": "4.4.7"} for r in recipients])
    record[key] = body
    return record
