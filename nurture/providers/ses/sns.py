"""SNS over HTTPS: verify a message's signature and topic before anything is read from it.

`verify` refuses (WebhookRejected 403) unless all of these hold:

- the body is an SNS message (Type, MessageId, TopicArn, Timestamp, Signature, ...);
- its TopicArn is the configured `ses.sns_topic_arn` (a foreign topic changes nothing);
- its SigningCertURL is `https://sns.<the topic's region>.amazonaws.com/...pem`: the
  certificate is fetched only from there (over verified TLS, no redirects, no proxy)
  and cached by URL;
- the signature over the fields SNS signs ("Name\\nvalue\\n" in a fixed order) checks
  with that certificate: SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA);
- its Timestamp is no older than SNS's own retry limit (one hour) plus a margin, and
  not in the future: an old message sent again is a replay. A replay within that hour
  is answered like SNS's own retry of it (events are stored once by their ids).

`confirm_subscription` visits the SubscribeURL of a verified SubscriptionConfirmation
for the configured topic only, under the same host rule.

Tests cannot get a certificate from amazonaws.com. `trust_for_tests` adds one more
HTTPS origin (a local server with its own CA) that certificates may come from; only the
test suite calls it, and production code never does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nurture.errors import WebhookRejected

MAX_AGE = timedelta(hours=1, minutes=15)  # SNS retries an HTTPS endpoint for at most one hour
MAX_AHEAD = timedelta(minutes=5)
MAX_CERTIFICATE_BYTES = 64 * 1024
FETCH_TIMEOUT = 10.0
_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):[0-9]{12}:[A-Za-z0-9_-]{1,256}")
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True)
class SnsMessage:
    type: str  # Notification | SubscriptionConfirmation | UnsubscribeConfirmation
    message_id: str
    topic_arn: str
    message: str  # for a Notification: the SES event record, as JSON text
    timestamp: datetime
    subscribe_url: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a certificate or confirmation URL that redirects is refused


@dataclass(frozen=True)
class _Origin:
    prefix: str
    context: ssl.SSLContext


_test_origins: list[_Origin] = []
_certificates: dict[str, rsa.RSAPublicKey] = {}
_lock = threading.Lock()


def trust_for_tests(origin: str, ca_file: Path) -> None:
    """Tests only: also take certificates and confirmation URLs from `origin` (https://127.0.0.1:PORT/),
    its TLS checked against `ca_file`."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with _lock:
        _test_origins.append(_Origin(origin.rstrip("/") + "/", context))


def forget_test_trust() -> None:
    with _lock:
        _test_origins.clear()
        _certificates.clear()


def _context_for(url: str, region: str, *, pem: bool) -> ssl.SSLContext | None:
    """The TLS context to fetch `url` with, or None when nurture must not fetch it."""
    tail = r"/[A-Za-z0-9._/-]+\.pem" if pem else r"/\?[^#\s]*"
    if re.fullmatch(rf"https://sns\.{re.escape(region)}\.amazonaws\.com(?:\.cn)?{tail}", url):
        return ssl.create_default_context()
    with _lock:
        for origin in _test_origins:
            if url.startswith(origin.prefix) and re.fullmatch(rf"https://[^/]+{tail}", url):
                return origin.context
    return None


def _fetch(url: str, context: ssl.SSLContext) -> bytes:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context), _NoRedirects()
    )
    with opener.open(url, timeout=FETCH_TIMEOUT) as answer:
        data: bytes = answer.read(MAX_CERTIFICATE_BYTES + 1)
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise ValueError("answer too large")
    return data


def _certificate(url: str, region: str) -> rsa.RSAPublicKey:
    with _lock:
        cached = _certificates.get(url)
    if cached is not None:
        return cached
    context = _context_for(url, region, pem=True)
    if context is None:
        raise WebhookRejected(403, "the signing certificate is not on an SNS host of the topic's region")
    try:
        key = x509.load_pem_x509_certificate(_fetch(url, context)).public_key()
    except (OSError, ValueError, urllib.error.URLError):
        raise WebhookRejected(403, "the SNS signing certificate could not be fetched or read") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRejected(403, "the SNS signing certificate is not an RSA certificate")
    with _lock:
        if len(_certificates) >= 16:
            _certificates.clear()
        _certificates[url] = key
    return key


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise WebhookRejected(403, f"not an SNS message ({name} missing)")
    return value


def verify(body: bytes, topic_arn: str | None, now: datetime) -> SnsMessage:
    """The SNS message if it is signed by SNS for `topic_arn`, recent; else WebhookRejected(403)."""
    if not topic_arn:
        raise WebhookRejected(
            403, "ses.sns_topic_arn is not set: SNS messages cannot be checked, so none are accepted"
        )
    match = _TOPIC.fullmatch(topic_arn)
    if match is None:
        raise WebhookRejected(403, "ses.sns_topic_arn is not a topic ARN")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookRejected(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "the body is not an SNS message")
    kind = _string(data, "Type")
    if kind not in _SIGNED_FIELDS:
        raise WebhookRejected(403, "not an SNS message type nurture takes")
    if _string(data, "TopicArn") != topic_arn:
        raise WebhookRejected(403, "the message is for another topic than ses.sns_topic_arn")
    version = _string(data, "SignatureVersion")
    if version not in _HASHES:
        raise WebhookRejected(403, "unknown SNS SignatureVersion")
    try:
        stamp = datetime.fromisoformat(_string(data, "Timestamp").replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRejected(403, "the SNS Timestamp is not a time") from None
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if stamp < now - MAX_AGE or stamp > now + MAX_AHEAD:
        raise WebhookRejected(
            403, "the SNS Timestamp is outside SNS's retry hour (a replay, or a clock problem)"
        )
    text = ""
    for name in _SIGNED_FIELDS[kind]:
        if name == "Subject" and "Subject" not in data:
            continue
        text += f"{name}\n{_string(data, name)}\n"
    try:
        signature = base64.b64decode(_string(data, "Signature"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected(403, "the SNS signature is not base64") from None
    key = _certificate(_string(data, "SigningCertURL"), match.group(1))
    try:
        key.verify(signature, text.encode("utf-8"), padding.PKCS1v15(), _HASHES[version]())
    except InvalidSignature:
        raise WebhookRejected(
            403, "the SNS signature does not match (forged, or changed on the way)"
        ) from None
    return SnsMessage(
        type=kind,
        message_id=_string(data, "MessageId"),
        topic_arn=topic_arn,
        message=_string(data, "Message"),
        timestamp=stamp,
        subscribe_url=data.get("SubscribeURL") if isinstance(data.get("SubscribeURL"), str) else None,
    )


def confirm_subscription(message: SnsMessage) -> None:
    """Visit the SubscribeURL of a verified confirmation for our topic (only on an SNS host)."""
    match = _TOPIC.fullmatch(message.topic_arn)
    url = message.subscribe_url
    if match is None or not url:
        raise WebhookRejected(403, "no SubscribeURL")
    context = _context_for(url, match.group(1), pem=False)
    if context is None:
        raise WebhookRejected(403, "the SubscribeURL is not on an SNS host of the topic's region")
    try:
        _fetch(url, context)
    except (OSError, ValueError, urllib.error.URLError):
        raise WebhookRejected(403, "SNS did not answer the subscription confirmation") from None
