"""Amazon SES transport: one SES v2 `SendEmail` per message, in parallel up to the account's rate.

SES has no request that carries many personalized emails without SES templates, so a
batch is sent as one call per envelope, `workers` at a time, paced by a token bucket
filled at the account's `MaxSendRate` (read once with `GetAccount`). Each call carries:

- the same text and HTML parts every provider gets, with the envelope's values in;
- `List-Unsubscribe` and `List-Unsubscribe-Post` (and any other envelope header) as
  `Content.Simple.Headers`, the Reply-To address;
- the delivery id as the one `EmailTags` entry (`delivery_id`): SES puts it on every
  event record of that email, which is how its events find their delivery;
- `ConfigurationSetName` on every call: the set publishes the events (SNS -> SQS).

What each answer means for one message:

- 200 with `MessageId`: "sent".
- TooManyRequestsException / LimitExceededException, 5xx, or a connection that failed
  before the request went out: wait (exponential backoff, full jitter) and retry; when
  retries run out, "failed". SES never accepted such a request, so a retry is safe.
- MessageRejected, BadRequestException: "failed" for that message.
- no answer in time after the request went out, or the connection broke then: "unknown"
  (never retried: SES has no idempotency key).
- SendingPausedException, AccountSuspendedException, MailFromDomainNotVerifiedException,
  NotFoundException (the configuration set), no AWS credentials, a paused or sandboxed
  account (`GetAccount`): the pass stops (`StoppedMidBatch`, a FatalTransportError)
  with what the owner should do; messages already accepted are reported as sent.

botocore's own retries are off (one attempt per call): it would retry a timed-out
request, and a timed-out SendEmail may have been sent. Credentials come from boto3's
standard chain only; `AWS_ENDPOINT_URL_SESV2` / `AWS_ENDPOINT_URL` point the client at a
stand-in (boto3 reads them itself). Nothing here logs an address.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import formataddr
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from nurture.errors import FatalTransportError
from nurture.providers.base import (
    Batch,
    Envelope,
    Outcome,
    StoppedMidBatch,
    apply_substitutions,
    ascii_address,
)
from nurture.providers.rate_limit import Pacer
from nurture.providers.ses.events import DELIVERY_TAG

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

log = logging.getLogger(__name__)

THROTTLED = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException"}
)
# Codes after which no other message can go out either: the owner has something to do.
STOPPING = {
    "SendingPausedException": "SES has paused sending for this account",
    "AccountSendingPausedException": "SES has paused sending for this account",
    "AccountSuspendedException": "SES has suspended this account",
    "MailFromDomainNotVerifiedException": "the MAIL FROM domain is not verified in SES",
    "NotFoundException": "SES does not know the configuration set (ses.configuration_set)",
    "AccessDeniedException": "the AWS credentials may not call ses:SendEmail",
    "UnrecognizedClientException": "AWS does not recognise the access key",
    "InvalidClientTokenId": "AWS does not recognise the access key",
    "SignatureDoesNotMatch": "the AWS secret key does not match the access key",
    "ExpiredTokenException": "the AWS session token has expired",
}
WHAT_TO_DO = (
    "See docs/providers.md (Amazon SES) for what to check in the SES console; sending stops until then."
)
MAX_DETAIL = 300


def _detail(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


class TokenBucket:
    """At most `rate` calls a second, evenly spaced, shared by threads.

    The bucket holds one token: no burst. SES measures its rate over short windows, and
    a full second's burst followed by a second of refill would send twice the rate
    within one second and be throttled."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(rate, 0.1)
        self._clock = clock
        self._tokens = 1.0
        self._at = clock()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Take a token; how long to sleep first (0.0 when one was there)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(1.0, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class SesTransport:
    """Sends each envelope with SES v2 SendEmail. Safe to use from many threads."""

    name = "ses"

    def __init__(
        self,
        *,
        region: str,
        configuration_set: str,
        timeout: float = 30.0,
        workers: int = 8,
        max_retries: int = 6,
        backoff_base: float = 0.2,
        backoff_cap: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        client: SESV2Client | None = None,
        pacer: Callable[[float], Pacer] | None = None,
    ) -> None:
        self.region = region
        self.configuration_set = configuration_set
        self.timeout = float(timeout)
        self.workers = max(1, workers)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._random = random.Random()
        self._client = client
        # Paces the calls at the account's rate: in this process only (TokenBucket), or across
        # every worker on the store (providers.rate_limit.SharedSchedule, as the app makes it).
        self._pacer = pacer or TokenBucket
        self._bucket: Pacer | None = None
        self._ready = threading.Lock()
        self._stopped: str | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SesTransport(region={self.region!r}, configuration_set={self.configuration_set!r})"

    # ------------------------------------------------------------------ setup

    def client(self) -> SESV2Client:
        if self._client is None:
            config = BotoConfig(
                region_name=self.region,
                connect_timeout=min(self.timeout, 10.0),
                read_timeout=self.timeout,
                # One attempt per call: a retried SendEmail after a timeout could send twice.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=max(10, self.workers * 2),
            )
            self._client = boto3.session.Session().client("sesv2", config=config)
        return self._client

    def _start(self) -> Pacer:
        """Read the account once: paused or sandboxed stops here; its MaxSendRate paces the calls."""
        with self._ready:
            if self._stopped:
                raise FatalTransportError(self._stopped)
            if self._bucket is not None:
                return self._bucket
            try:
                account = self._read_account()
            except NoCredentialsError:
                self._stopped = (
                    "no AWS credentials found: nurture reads them from the standard AWS chain "
                    "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or this machine's "
                    "instance role), "
                    "never from config.yaml. " + WHAT_TO_DO
                )
                raise FatalTransportError(self._stopped) from None
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                why = STOPPING.get(code, "check the credentials and the region")
                self._stopped = f"SES refused GetAccount ({code}): {why}. {WHAT_TO_DO}"
                raise FatalTransportError(self._stopped) from None
            except BotoCoreError as exc:
                # Still not reachable after a few tries: nothing was handed over; stop rather than
                # leave the emails of this pass in doubt.
                raise FatalTransportError(
                    f"could not reach SES in {self.region} ({type(exc).__name__}); check the network "
                    "and ses.region, then run again"
                ) from None
            if account.get("SendingEnabled") is False:
                self._stopped = (
                    "SES has paused sending for this account (SendingEnabled is false): open the SES "
                    "console, Account dashboard, read why, and resume sending there. " + WHAT_TO_DO
                )
                raise FatalTransportError(self._stopped)
            if account.get("ProductionAccessEnabled") is False:
                self._stopped = (
                    "the SES account is in the sandbox: it may mail only addresses verified in SES, so "
                    "nurture sends nothing. Request production access in the SES console (Account "
                    "dashboard) for this region. " + WHAT_TO_DO
                )
                raise FatalTransportError(self._stopped)
            quota = account.get("SendQuota") or {}
            rate = float(quota.get("MaxSendRate") or 1.0)
            self._bucket = self._pacer(rate)
            self._pool = ThreadPoolExecutor(
                max_workers=max(1, min(self.workers, int(rate) or 1)), thread_name_prefix="nurture-ses"
            )
            log.info("SES account ready: up to %g emails a second", rate)
            return self._bucket

    def _read_account(self) -> dict[str, Any]:
        """GetAccount, tried again (with backoff) while throttled or unreachable: reading is safe."""
        attempt = 0
        while True:
            try:
                return dict(self.client().get_account())
            except NoCredentialsError:
                raise
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code not in THROTTLED or attempt >= self.max_retries:
                    raise
            except BotoCoreError:
                if attempt >= min(self.max_retries, 3):
                    raise
            attempt += 1
            self._sleep(self._backoff(attempt))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._client = None

    # ------------------------------------------------------------------ sending

    def request(self, batch: Batch, envelope: Envelope) -> dict[str, Any]:
        """The SendEmail parameters for one envelope (what goes to SES, and nothing more)."""
        sender = batch.sender
        content: dict[str, Any] = {
            "Subject": {"Data": envelope.subject, "Charset": "UTF-8"},
            "Body": {},
        }
        if batch.text:
            content["Body"]["Text"] = {
                "Data": apply_substitutions(batch.text, envelope.substitutions),
                "Charset": "UTF-8",
            }
        if batch.html:
            content["Body"]["Html"] = {
                "Data": apply_substitutions(batch.html, envelope.substitutions),
                "Charset": "UTF-8",
            }
        if not content["Body"]:
            raise ValueError("a batch needs a text or an HTML body")
        if envelope.headers:
            content["Headers"] = [{"Name": name, "Value": value} for name, value in envelope.headers.items()]
        params: dict[str, Any] = {
            "FromEmailAddress": formataddr((sender.from_name, sender.from_email), charset="utf-8"),
            "Destination": {
                "ToAddresses": [
                    formataddr((envelope.to_name or "", ascii_address(envelope.to_email)), "utf-8")
                ]
            },
            "Content": {"Simple": content},
            # The message key (never reused), as every provider's events echo it back.
            "EmailTags": [
                {"Name": DELIVERY_TAG, "Value": envelope.custom_args.get("delivery_id", envelope.delivery_id)}
            ],
            "ConfigurationSetName": self.configuration_set,
        }
        if sender.reply_to:
            params["ReplyToAddresses"] = [sender.reply_to]
        return params

    def send(self, batch: Batch) -> list[Outcome]:
        if not batch.envelopes:
            raise ValueError("a batch needs at least one envelope")
        bucket = self._start()
        requests = [(envelope.delivery_id, self.request(batch, envelope)) for envelope in batch.envelopes]
        pool = self._pool
        assert pool is not None
        stop = threading.Event()
        results = list(pool.map(lambda item: self._send_one(item[0], item[1], bucket, stop), requests))
        outcomes = [outcome for outcome in results if outcome is not None]
        if self._stopped:
            # Handed over: recorded. Never tried (None): their claims are released.
            raise StoppedMidBatch(self._stopped, outcomes)
        return outcomes

    def _send_one(
        self, delivery_id: str, params: dict[str, Any], bucket: Pacer, stop: threading.Event
    ) -> Outcome | None:
        attempt = 0
        while True:
            if stop.is_set() or self._stopped:
                return None
            wait = bucket.wait_time()
            if wait:
                self._sleep(wait)
            try:
                answer = self.client().send_email(**params)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                message = _detail(str(error.get("Message", "")))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
                if code in STOPPING:
                    self._stop(f"SES stopped sending ({code}): {STOPPING[code]}. {WHAT_TO_DO}", stop)
                    return None
                if code in THROTTLED or status >= 500:
                    if attempt < self.max_retries:
                        delay = self._backoff(attempt)
                        attempt += 1
                        log.warning(
                            "SES answered %s; retry %d of %d in %.2fs",
                            code or status,
                            attempt,
                            self.max_retries,
                            delay,
                        )
                        self._sleep(delay)
                        continue
                    return Outcome(
                        delivery_id,
                        "failed",
                        error=f"SES answered {code or status} on all {attempt + 1} attempts",
                    )
                # MessageRejected, BadRequestException, anything else about this message.
                return Outcome(delivery_id, "failed", error=f"SES refused the email ({code}): {message}")
            except NoCredentialsError:
                self._stop("no AWS credentials found (the standard AWS chain). " + WHAT_TO_DO, stop)
                return None
            except (EndpointConnectionError, ConnectTimeoutError) as exc:
                # Never connected: the request did not go out.
                if attempt < self.max_retries:
                    delay = self._backoff(attempt)
                    attempt += 1
                    log.warning(
                        "could not reach SES (%s); retry %d in %.2fs", type(exc).__name__, attempt, delay
                    )
                    self._sleep(delay)
                    continue
                return Outcome(delivery_id, "failed", error=f"could not reach SES on {attempt + 1} attempts")
            except (ReadTimeoutError, ConnectionClosedError, BotoCoreError, OSError) as exc:
                # The request went out and no answer came back: it may have been sent.
                return Outcome(
                    delivery_id,
                    "unknown",
                    error=f"no answer from SES ({type(exc).__name__}); the email may have been sent",
                )
            return Outcome(delivery_id, "sent", provider_message_id=str(answer["MessageId"]))

    def _stop(self, reason: str, stop: threading.Event) -> None:
        with self._ready:
            if not self._stopped:
                log.error("%s", reason)
                self._stopped = reason
        stop.set()

    def _backoff(self, attempt: int) -> float:
        return self._random.uniform(0.0, min(self.backoff_cap, self.backoff_base * (2**attempt)))
