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
        ip: str | None = None,
    ) -> httpx.Client:
        client = client or self.client()
        answer = self.try_login(client, email=email, password=password, code=code, ip=ip)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/console/"
        return client

    def try_login(
        self,
        client: httpx.Client,
        *,
        email: str = OWNER,
        password: str = PASSWORD,
        code: str = "",
        ip: str | None = None,
    ) -> httpx.Response:
        """`ip`: the address the request comes from, as the proxy in front says (X-Forwarded-For)."""
        headers = {"X-Forwarded-For": ip} if ip else None
        page = client.get("/console/login", headers=headers)
        return client.post(
            "/console/login",
            data={"csrf_token": csrf(page.text), "email": email, "password": password, "code": code},
            headers=headers,
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
    tmp_path: Path,
    *,
    with_owner: bool = True,
    https: bool = False,
    app_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[Console]:
    """A served project with an owner account. `https`: web.public_base_url is https (so
    the links in emails pass `nurture check`), the server itself plain http. `app_options`:
    more arguments of create_app (the doctor's name servers, say)."""
    clock = Clock()
    if https:
        overrides.setdefault("web.public_base_url", "https://mail.riverbend.example")
    with live_web(tmp_path, app_options={"clock": clock, **(app_options or {})}, **overrides) as web:
        if with_owner:
            add_owner(web.app, OWNER, PASSWORD, clock.now)
        site = Console(web, clock, https=https)
        try:
            yield site
        finally:
            for client in site.clients:
                client.close()


# ---------------------------------------------------------------- the owner's account

_SECRET = re.compile(r'<code class="secret">([A-Z2-7 ]+)</code>')
_RECOVERY = re.compile(r"<li><code>([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})</code></li>")
_JOIN = re.compile(r"/console/join/([A-Za-z0-9_-]+)")


def code_app_secret(html: str) -> str:
    found = _SECRET.search(html)
    assert found, "no code app key on the page"
    return found.group(1).replace(" ", "")


def recovery_codes(html: str) -> list[str]:
    return _RECOVERY.findall(html)


def set_up_code_app(site: Console, client: httpx.Client) -> tuple[str, list[str]]:
    """Through the console as she would: start, read the key off the page, confirm with a code.
    Returns the secret and the recovery codes shown."""
    import pyotp

    token = csrf(client.get("/console/account").text)
    started = client.post("/console/account/code-app/start", data={"csrf_token": token})
    assert started.status_code == 303 and started.headers["location"] == "/console/account/code-app"
    page = client.get("/console/account/code-app")
    assert page.status_code == 200, page.text
    secret = code_app_secret(page.text)
    code = pyotp.TOTP(secret).at(site.clock.now)
    done = client.post("/console/account/code-app/confirm", data={"csrf_token": token, "code": code})
    assert done.status_code == 200, done.text
    codes = recovery_codes(done.text)
    assert len(codes) == 10
    return secret, codes


def invitation_links(app: Any) -> list[str]:
    """The join links in the invitation emails in the outbox, oldest first (as tokens)."""
    from email import message_from_bytes, policy

    tokens = []
    for path in sorted(app.config.outbox_dir.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if "invited" not in str(message["subject"]):
            continue
        text = message.get_body(preferencelist=("plain",)).get_content()
        tokens += _JOIN.findall(text)
    return tokens
