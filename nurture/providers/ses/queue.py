"""The SQS queue subscribed to the SES events topic: receive, read, delete.

SNS retries an HTTPS endpoint for an hour at most; a queue keeps messages for up to 14
days, so an outage of nurture loses nothing and no public endpoint is needed. Each SQS
message is an SNS notification (its `Message` the SES record), or the record itself
when the subscription uses raw message delivery. A notification for another topic
than `ses.sns_topic_arn` (when set) is refused as malformed.

The caller stores the records' events and only then deletes the messages
(`delete`): a process stopped in between leaves them in the queue, they come back
after the visibility timeout, and their events are stored once (ids are content-based).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_MESSAGES = 10  # SQS's own limit per ReceiveMessage


@dataclass
class QueueMessage:
    receipt_handle: str
    records: list[Any] = field(default_factory=list)
    problem: str | None = None  # why its body could not be read (deleted all the same: it never will be)


def client(region: str, timeout: float = 30.0) -> SQSClient:
    """An SQS client (credentials from the standard chain; AWS_ENDPOINT_URL_SQS honoured by boto3)."""
    config = BotoConfig(
        region_name=region,
        connect_timeout=10.0,
        read_timeout=max(timeout, 25.0),  # longer than the longest long poll (20 s)
        retries={"total_max_attempts": 3, "mode": "standard"},  # receiving and deleting are safe to retry
    )
    return boto3.session.Session().client("sqs", config=config)


def read_body(body: str, topic_arn: str | None) -> list[Any]:
    """The SES record(s) an SQS message body carries; ValueError when it is not one."""
    data = json.loads(body)
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        if topic_arn and data.get("TopicArn") != topic_arn:
            raise ValueError("a notification from another topic than ses.sns_topic_arn")
        inner = data["Message"]
        data = json.loads(inner) if isinstance(inner, str) else inner
    if isinstance(data, dict):
        return [data]
    raise ValueError("not an SES event record")


def receive(sqs: SQSClient, queue_url: str, topic_arn: str | None, wait_seconds: int) -> list[QueueMessage]:
    """Up to 10 messages, waiting up to `wait_seconds` (long polling) for the first."""
    answer = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=MAX_MESSAGES, WaitTimeSeconds=max(0, min(wait_seconds, 20))
    )
    messages = []
    for item in answer.get("Messages", []):
        handle = item.get("ReceiptHandle")
        if not handle:
            continue
        message = QueueMessage(handle)
        try:
            message.records = read_body(item.get("Body", ""), topic_arn)
        except (ValueError, TypeError, RecursionError) as exc:
            message.problem = type(exc).__name__ if not isinstance(exc, ValueError) else str(exc)[:200]
        messages.append(message)
    return messages


def delete(sqs: SQSClient, queue_url: str, messages: list[QueueMessage]) -> int:
    """Delete messages whose events are stored; how many SQS deleted."""
    deleted = 0
    for start in range(0, len(messages), MAX_MESSAGES):
        chunk = messages[start : start + MAX_MESSAGES]
        answer = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(index), "ReceiptHandle": m.receipt_handle} for index, m in enumerate(chunk)],
        )
        deleted += len(answer.get("Successful", []))
    return deleted
