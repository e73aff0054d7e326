"""SendGrid transport: one v3 `POST /v3/mail/send` per batch, one personalization per envelope.

The request body is written as JSON text by `body.encode_request_body`: the library's
`Mail`/`Personalization` helper classes do the same job many times slower for a
thousand personalizations. It is posted through the official `sendgrid` library's
HTTP client (its URL building, headers, opener and error classes), past the one step
that would cost more than the rest: `http_request` formats the whole payload into a
debug message on every call, logging on or off.

What each answer means for the batch:

- 202 (200 in sandbox mode): every envelope "sent", provider_message_id = X-Message-Id.
- 429: wait until X-RateLimit-Reset (capped), then retry; counts against max_retries. With
  a `SharedPause` (the app gives one), every worker on the store waits for that moment too.
- 500/502/503/504, or a connection that failed before the request went out: retry
  with exponential backoff and full jitter; when retries run out, every envelope "failed".
- no answer within `timeout` after the request went out (or the connection broke
  then): NOT retried, since SendGrid has no idempotency key and a retry could send the
  batch twice; every envelope "unknown".
- 401/403: `FatalTransportError` - no request with this key can succeed.
- any other 4xx (400, 413, ...): every envelope "failed" with SendGrid's messages.

What SendGrid learns is the email itself and nothing more (SendGrid signs no HIPAA
business associate agreement): `custom_args` carry only the opaque ids named in
OPAQUE_CUSTOM_ARGS, recipient domains go out in their ASCII (IDNA) form, and every
request sets `tracking_settings` from `delivery.tracking`, so the account's own
defaults never decide whether readers are tracked.

Nothing here logs an address, a name or the API key. python_http_client logs every
payload and the Authorization header at DEBUG level; a filter on its logger drops
those records.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import python_http_client
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Outcome
from nurture.providers.rate_limit import SharedPause
from nurture.providers.sendgrid.body import (
    OPAQUE_CUSTOM_ARGS,
    Tracking,
    build_request_body,
    encode_request_body,
    tracking_settings,
)

__all__ = [
    "OPAQUE_CUSTOM_ARGS",
    "SendGridTransport",
    "Tracking",
    "build_request_body",
    "encode_request_body",
    "sendgrid_error_text",
    "tracking_settings",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.sendgrid.com"
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RATE_LIMIT_MAX_WAIT = 60.0
ERROR_BODY_LIMIT = 500


class _DropLibraryDebug(logging.Filter):
    """python_http_client logs request payloads (addresses) and headers (the API key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_library_logger = logging.getLogger("python_http_client.client")
if not any(isinstance(f, _DropLibraryDebug) for f in _library_logger.filters):
    _library_logger.addFilter(_DropLibraryDebug())


class _DirectClient(python_http_client.Client):  # type: ignore[misc]  # python_http_client ships no types, so Client is Any
    """python_http_client.Client that never goes through a proxy.

    The stock client calls `urllib.request.build_opener()` for every request; its
    ProxyHandler reads HTTP(S)_PROXY/NO_PROXY from the environment, so a proxy set in
    the environment would see (and could break) traffic to the configured host. This
    subclass uses one opener with an empty ProxyHandler instead: the environment does
    not matter. It overrides `_make_request` (the library's documented seam for tests)
    and `_build_client` (so the `.mail.send` chain keeps this class).
    """

    def __init__(
        self, *args: Any, opener: urllib.request.OpenerDirector | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._opener = opener or urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _build_client(self, name: str | None = None) -> _DirectClient:
        url_path = self._url_path + [name] if name else self._url_path
        return _DirectClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            opener=self._opener,
        )

    def _make_request(
        self, opener: Any, request: urllib.request.Request, timeout: float | None = None
    ) -> Any:
        return super()._make_request(self._opener, request, timeout=timeout)

    def post_json(self, data: bytes, timeout: float) -> Any:
        """POST a body already encoded as JSON; a Response, or the library's HTTPError subclasses.

        What `.post(request_body=...)` does, without serializing a dict again and
        without formatting the payload into a debug message nobody reads."""
        headers = {**self.request_headers, "Content-Type": "application/json"}
        request = urllib.request.Request(self._build_url(None), headers=headers, data=data, method="POST")
        return python_http_client.client.Response(self._make_request(self._opener, request, timeout=timeout))


def sendgrid_error_text(body: bytes | str | None) -> str:
    """SendGrid's error messages joined, or the raw body (truncated) when it is not JSON."""
    if body is None:
        return "(empty answer)"
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        parts = []
        for error in data["errors"]:
            if isinstance(error, dict) and error.get("message"):
                part = str(error["message"])
                if error.get("field"):
                    part += f" (field: {error['field']})"
                parts.append(part)
            elif isinstance(error, str):
                parts.append(error)
        if parts:
            return "; ".join(parts)
    text = text.strip()
    if not text:
        return "(empty answer)"
    return text if len(text) <= ERROR_BODY_LIMIT else text[:ERROR_BODY_LIMIT] + "..."


def _body_text(body: bytes | str | None) -> str | None:
    if body is None:
        return None
    return body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)


class SendGridTransport:
    """Sends each batch as one SendGrid v3 mail/send request. Safe to use from many threads."""

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        host: str = DEFAULT_HOST,
        timeout: float = 30.0,
        sandbox_mode: bool = False,
        tracking: Tracking = "off",
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        pause: SharedPause | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("SendGridTransport needs an API key")
        host = (host or DEFAULT_HOST).rstrip("/")
        if not host.startswith(("https://", "http://")):
            raise ValueError(f"the SendGrid host must start with https:// or http://, got {host!r}")
        if timeout is None or timeout <= 0:
            raise ValueError("the SendGrid request timeout must be a positive number of seconds")
        if max_retries < 0:
            raise ValueError("max_retries cannot be negative")
        self._api_key = api_key
        self.host = host
        self.timeout = float(timeout)
        self.sandbox_mode = sandbox_mode
        self.tracking: Tracking = tracking
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        # A 429's reset moment, shared with every worker on the store (None: this process only).
        self._pause = pause
        self._random = random.Random()
        # python_http_client.Client is not safe to share between threads: it mutates its
        # request_headers dict on every call (setdefault Content-Type, request_headers=...)
        # while urllib iterates it, and `.version()` mutates the instance. One per thread.
        self._local = threading.local()
        self._closed = False

    def __repr__(self) -> str:  # never show the key
        settings = f"host={self.host!r}, sandbox_mode={self.sandbox_mode}, tracking={self.tracking!r}"
        return f"SendGridTransport({settings})"

    def _api(self) -> SendGridAPIClient:
        api = getattr(self._local, "api", None)
        if api is None:
            api = SendGridAPIClient(api_key=self._api_key, host=self.host)
            api.client = _DirectClient(
                host=api.host,
                request_headers=api._default_headers,  # a fresh dict for this thread
                version=3,
                timeout=self.timeout,
            )
            self._local.api = api
        return api

    def close(self) -> None:
        # urllib opens one connection per request (Connection: close): nothing stays open.
        self._closed = True
        self._local = threading.local()

    # ------------------------------------------------------------------ sending

    def send(self, batch: Batch) -> list[Outcome]:
        if self._closed:
            raise RuntimeError("this SendGridTransport has been closed")
        body = encode_request_body(batch, sandbox_mode=self.sandbox_mode, tracking=self.tracking)
        ids = [env.delivery_id for env in batch.envelopes]
        count = len(ids)
        attempt = 0  # retries done so far
        while True:
            if self._pause is not None and (held := self._pause.wait_time()):
                self._sleep(min(held, RATE_LIMIT_MAX_WAIT))
            try:
                response = self._api().client.mail.send.post_json(body, timeout=self.timeout)
            except http_errors.HTTPError as exc:
                status = int(exc.status_code)
                detail = sendgrid_error_text(exc.body)
                if status in (401, 403):
                    log.error("SendGrid refused the API key (%s)", status)
                    raise FatalTransportError(
                        f"SendGrid rejected the API key ({status}): "
                        f"{detail.rstrip('.')}. Check SENDGRID_API_KEY: "
                        "it must be a current API key of this SendGrid account with the Mail Send "
                        "permission (and, if IP access management is on, this machine's IP must be allowed).",
                        status=status,
                        body=_body_text(exc.body),
                    ) from None
                if status == 429 or status in RETRYABLE_STATUSES:
                    if attempt < self.max_retries:
                        if status == 429:
                            delay = self._rate_limit_wait(exc.headers, attempt)
                            if self._pause is not None:
                                self._pause.hold_until(time.time() + delay)
                        else:
                            delay = self._backoff(attempt)
                        attempt += 1
                        log.warning(
                            "SendGrid answered %s for a batch of %d; retry %d of %d in %.2fs",
                            status,
                            count,
                            attempt,
                            self.max_retries,
                            delay,
                        )
                        self._sleep(delay)
                        continue
                    what = "kept rate-limiting (429)" if status == 429 else f"answered {status}"
                    log.error("SendGrid %s on all %d attempts; batch of %d failed", what, attempt + 1, count)
                    return self._all(
                        ids, "failed", error=f"SendGrid {what} on all {attempt + 1} attempts: {detail}"
                    )
                log.error("SendGrid rejected a batch of %d (%s)", count, status)
                return self._all(ids, "failed", error=f"SendGrid rejected the request ({status}): {detail}")
            except urllib.error.URLError as exc:
                # Raised while connecting or sending the request (urllib wraps those OSErrors
                # in URLError): SendGrid never got a whole request, so retrying is safe.
                reason = exc.reason
                if attempt < self.max_retries:
                    delay = self._backoff(attempt)
                    attempt += 1
                    log.warning(
                        "could not reach SendGrid at %s (%s); retry %d of %d in %.2fs",
                        self.host,
                        reason,
                        attempt,
                        self.max_retries,
                        delay,
                    )
                    self._sleep(delay)
                    continue
                log.error("could not reach SendGrid at %s on %d attempts", self.host, attempt + 1)
                return self._all(
                    ids,
                    "failed",
                    error=f"could not reach SendGrid at {self.host} on {attempt + 1} attempts: {reason}",
                )
            except TimeoutError:
                # The request went out and no answer came: it may have been delivered.
                log.error(
                    "no answer from SendGrid within %gs for a batch of %d; outcome unknown",
                    self.timeout,
                    count,
                )
                return self._all(
                    ids,
                    "unknown",
                    error=f"no answer from SendGrid within {self.timeout:g}s; "
                    "the request may have been delivered",
                )
            except (OSError, http.client.HTTPException) as exc:
                # The connection broke after the request went out: same doubt as a timeout.
                log.error(
                    "connection to SendGrid broke after sending a batch of %d (%s)", count, type(exc).__name__
                )
                return self._all(
                    ids,
                    "unknown",
                    error="the connection to SendGrid broke after the request was sent "
                    f"({exc or type(exc).__name__}); the request may have been delivered",
                )
            message_id = response.headers.get("X-Message-Id")
            log.info("SendGrid accepted a batch of %d (%s)", count, response.status_code)
            return [Outcome(i, "sent", message_id) for i in ids]

    @staticmethod
    def _all(ids: list[str], status: Any, *, error: str) -> list[Outcome]:
        return [Outcome(delivery_id=i, status=status, error=error) for i in ids]

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return self._random.uniform(0.0, min(self.backoff_cap, self.backoff_base * (2**attempt)))

    def _rate_limit_wait(self, headers: Any, attempt: int) -> float:
        reset = headers.get("X-RateLimit-Reset") if headers is not None else None
        if reset is None:
            wait = self._backoff(attempt)
        else:
            try:
                wait = float(reset) - time.time()
            except (TypeError, ValueError):
                wait = self._backoff(attempt)
        return min(max(wait, 0.0), RATE_LIMIT_MAX_WAIT)
