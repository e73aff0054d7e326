"""What stands between the internet and the handlers: body limits, the signup rate
limit, the headers every answer carries, and what we take from the client.

Client IP: the socket peer. Behind a reverse proxy on the same machine, uvicorn's
proxy headers support (`proxy_headers=True`, `forwarded_allow_ips="127.0.0.1"`,
set by `nurture.web.app.server_config`) takes the address from X-Forwarded-For,
trusting it only when the request comes from 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

FORM_BODY_LIMIT = 64 * 1024
WEBHOOK_BODY_LIMIT = 8 * 1024 * 1024  # SendGrid posts batches of up to about 768 KB
RATE_LIMIT = (5, 600.0)  # signups per IP per 10 minutes


class RateLimiter:
    """At most `limit` hits per key in a sliding `window` of seconds, in memory."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._hits) >= self.max_keys:
                self._prune(now)
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True

    def retry_after(self, key: str) -> int:
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return 0
            return max(1, int(self.window - (self.clock() - hits[0])) + 1)

    def _prune(self, now: float) -> None:
        for key in [key for key, hits in self._hits.items() if not hits or now - hits[-1] >= self.window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # under a flood, forget the oldest half rather than grow
            for key in sorted(self._hits, key=lambda k: self._hits[k][-1])[: len(self._hits) // 2]:
                del self._hits[key]


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
                headers = [(name, value) for name, value in message.get("headers", []) if name.lower() not in ours]
                message = {**message, "headers": headers + self.HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def user_agent(request: Request) -> str | None:
    return (request.headers.get("user-agent") or "")[:400] or None
