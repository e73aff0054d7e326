"""What stands between the internet and the handlers: body limits (checked before any
handler runs) and the headers every answer carries. (What we take from the client is
in `nurture.web.client`; the signup rate limit lives in the store: `nurture.web.ratelimit`.)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_BODY_LIMIT = 64 * 1024
WEBHOOK_BODY_LIMIT = 8 * 1024 * 1024  # SendGrid posts batches of up to about 768 KB
SNS_BODY_LIMIT = 512 * 1024  # one SNS message: at most 256 KB of message, plus its envelope


BODY_DROPPED = "nurture.body_dropped"  # scope key: the body was over the limit and not read


class BodyLimit:
    """Reads each request's whole body before any handler runs, so a refusal comes first.

    A body over its path's limit (a declared Content-Length, or what arrives in chunks)
    is answered 413 by `too_large` and the handler never runs: nothing is written. A path
    has the limit named for it in `limits`, else that of the first of `prefix_limits` it
    starts with, else `limit`. Paths
    starting with one of `acts_anyway` are requests that must be honoured whatever came
    with them (RFC 8058 one-click unsubscribe): their handler runs with an empty body
    and `scope[BODY_DROPPED]` set. Starlette's own limit answers 413 only when the
    handler reads the body, after a handler that does not has already acted. Paths in
    `streamed` (file uploads) are passed on unread: their handler enforces its own limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        too_large: Callable[[Request, Exception], Awaitable[Response]],
        limits: Mapping[str, int] | None = None,
        prefix_limits: Mapping[str, int] | None = None,
        acts_anyway: tuple[str, ...] = (),
        streamed: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.limits = dict(limits or {})
        self.prefix_limits = dict(prefix_limits or {})
        self.acts_anyway = acts_anyway
        self.streamed = streamed
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self.streamed:
            # A file upload: its handler reads it as it arrives and enforces its own limit.
            await self.app(scope, receive, send)
            return
        body, complete = await self._read(scope, receive, self.limit_of(path))
        if body is None:
            return  # the client went away
        if not complete:
            if not path.startswith(self.acts_anyway):
                request = Request(scope)
                response = await self.too_large(request, HTTPException(413))
                await response(scope, receive, send)
                return
            scope[BODY_DROPPED] = True
            body = b""
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def limit_of(self, path: str) -> int:
        """The path's own limit, else that of the prefix it starts with, else the default."""
        if path in self.limits:
            return self.limits[path]
        for prefix, limit in self.prefix_limits.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    @staticmethod
    async def _read(scope: Scope, receive: Receive, limit: int) -> tuple[bytes | None, bool]:
        """(the body, True) if within `limit`; (b"", False) once over it; (None, False) on disconnect."""
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            return b"", False
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, False
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True


class SecurityHeaders:
    """Headers on every answer: no caching (the URLs carry tokens), no referrer, no framing, no sniffing."""

    HEADERS = [
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                ours = {name for name, _ in self.HEADERS}
                headers = [
                    (name, value) for name, value in message.get("headers", []) if name.lower() not in ours
                ]
                message = {**message, "headers": headers + self.HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class FreshSettings:
    """Before a request, the settings saved in the console as the store has them now, read at
    most every `interval` seconds: another process, or another owner, may have changed them.
    `refresh` is App.refresh_settings (one small query)."""

    def __init__(self, app: ASGIApp, *, refresh: Callable[[], object], interval: float = 2.0) -> None:
        self.app = app
        self.refresh = refresh
        self.interval = interval
        self._next = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            await run_in_threadpool(self.refresh)
        await self.app(scope, receive, send)
