"""Helpers for the owner console's tests: an owner, a signed-in client, the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from nurture.owners.accounts import add_owner
from tests.support.webserver import LiveWeb, live_web

OWNER = "anna@riverbend.example"
PASSWORD = "a long enough passphrase"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    """The console's clock, moved by tests (sessions time out by it)."""

    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Console:
    web: LiveWeb
    clock: Clock
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def app(self) -> Any:
        return self.web.app

    def client(self, **options: Any) -> httpx.Client:
        """A client sending this site's Origin (closed when the console test ends)."""
        options.setdefault("headers", {"Origin": self.web.url})
        client = self.web.client(**options)
        self.clients.append(client)
        return client

    def login(self, client: httpx.Client | None = None, *, email: str = OWNER, password: str = PASSWORD, code: str = "") -> httpx.Client:
        client = client or self.client()
        answer = self.try_login(client, email=email, password=password, code=code)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/console/"
        return client

    def try_login(self, client: httpx.Client, *, email: str = OWNER, password: str = PASSWORD, code: str = "") -> httpx.Response:
        page = client.get("/console/login")
        return client.post("/console/login", data={"csrf_token": csrf(page.text), "email": email, "password": password, "code": code})


def csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@contextmanager
def console(tmp_path: Path, *, with_owner: bool = True, **overrides: Any) -> Iterator[Console]:
    clock = Clock()
    with live_web(tmp_path, app_options={"clock": clock}, **overrides) as web:
        if with_owner:
            add_owner(web.app, OWNER, PASSWORD, clock.now)
        site = Console(web, clock)
        try:
            yield site
        finally:
            for client in site.clients:
                client.close()
