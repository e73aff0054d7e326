"""Helpers for the owner console's tests: an owner, a signed-in client, the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

    # A Tuesday, 10:00 in New York: inside the send window, so a sending pass sends.
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 15, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Console:
    web: LiveWeb
    clock: Clock
    clients: list[httpx.Client] = field(default_factory=list)
    https: bool = False

    @property
    def app(self) -> Any:
        return self.web.app

    def client(self, **options: Any) -> httpx.Client:
        """A client sending this site's Origin (closed when the console test ends)."""
        options.setdefault("headers", {"Origin": self.web.url})
        if self.https:
            options["event_hooks"] = {"response": [lambda response: _keep_secure_cookies(client, response)]}
        client = self.web.client(**options)
        self.clients.append(client)
        return client

    def login(
        self,
        client: httpx.Client | None = None,
        *,
        email: str = OWNER,
        password: str = PASSWORD,
        code: str = "",
    ) -> httpx.Client:
        client = client or self.client()
        answer = self.try_login(client, email=email, password=password, code=code)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/console/"
        return client

    def try_login(
        self, client: httpx.Client, *, email: str = OWNER, password: str = PASSWORD, code: str = ""
    ) -> httpx.Response:
        page = client.get("/console/login")
        return client.post(
            "/console/login",
            data={"csrf_token": csrf(page.text), "email": email, "password": password, "code": code},
        )


def _keep_secure_cookies(client: httpx.Client, response: httpx.Response) -> None:
    """With an https public address the cookies are Secure, which a client keeps off plain
    http; the test server is plain http behind no proxy, so hand them back as the browser
    behind a TLS proxy would."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        value = rest.split(";")[0]
        if "Max-Age=0" in header:
            client.cookies.delete(name)
        else:
            client.cookies.set(name, value, domain="127.0.0.1", path="/console")


def csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@contextmanager
def console(
    tmp_path: Path, *, with_owner: bool = True, https: bool = False, **overrides: Any
) -> Iterator[Console]:
    """A served project with an owner account. `https`: web.public_base_url is https (so
    the links in emails pass `nurture check`), the server itself plain http."""
    clock = Clock()
    if https:
        overrides.setdefault("web.public_base_url", "https://mail.riverbend.example")
    with live_web(tmp_path, app_options={"clock": clock}, **overrides) as web:
        if with_owner:
            add_owner(web.app, OWNER, PASSWORD, clock.now)
        site = Console(web, clock, https=https)
        try:
            yield site
        finally:
            for client in site.clients:
                client.close()
