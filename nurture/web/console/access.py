"""What every /console request passes first: a live owner session, the Origin of a POST,
and its CSRF token. A POST that fails any check gets 403 before any handler runs, so
nothing changes.

Sessions: the cookie `SESSION_COOKIE` holds a random id (see nurture.owners.sessions),
HttpOnly, SameSite=Strict, Path=/console, Secure when web.public_base_url is https.
The forms that come before any session (signing in, accepting an invitation) use a
double-submit token: the same random value in a cookie and in the form.

A form larger than FORM_LIMIT is refused before anything else, with the console's own
page; any form the browser lets her fill stays far below it (an email's text is at
most 200,000 characters, each at most 9 bytes once form-encoded), so what she typed
always reaches the page that says what is wrong with it, and comes back in the form.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers
from starlette.requests import Request, cookie_parser
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from nurture.app import App
from nurture.owners.accounts import owner_count
from nurture.owners.sessions import current
from nurture.web.console.paths import CSRF_FIELD, PREFIX
from nurture.web.console.render import error_page

LOGIN = PREFIX + "/login"
SESSION_COOKIE = "nurture_console"
LOGIN_CSRF_COOKIE = "nurture_console_login"
JOIN = PREFIX + "/join/"
# Reachable without a session: the way in, its style sheet, and invitation links.
PUBLIC = {LOGIN, PREFIX + "/static/console.css"}
PUBLIC_PREFIXES = (JOIN,)
FORM_LIMIT = 2 * 1024 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
# Forms that upload a file: multipart, streamed to their handler (which enforces its own size
# limit). Their first field must be the CSRF token, which is checked before the file is read.
UPLOADS = {PREFIX + "/subscribers/import"}
UPLOAD_TYPE = "multipart/form-data"
FIRST_FIELD_LIMIT = 16 * 1024


async def read_form(request: Request) -> FormData:
    """The posted form, any field up to FORM_LIMIT (Starlette's own default is 1 MB a field,
    which an email's text can pass: the answer would be a bare 400, and her text lost)."""
    return await request.form(max_part_size=FORM_LIMIT)


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def before_a_session(path: str) -> bool:
    """A form posted before any session: its CSRF token is the double-submit cookie's."""
    return path == LOGIN or path.startswith(JOIN)


def secure_cookies(app: App) -> bool:
    return app.config.web.public_base_url.startswith("https://")


def set_cookie(response: Response, app: App, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        secure=secure_cookies(app),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, app: App, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, secure=secure_cookies(app), httponly=True, samesite="strict")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(headers: Headers, scheme: str, app: App) -> bool:
    """The POST comes from one of our own pages: its Origin (or else its Referer) is this site."""
    allowed = {_origin_of(app.config.web.public_base_url)}
    host = headers.get("host")
    if host:
        allowed.add(f"{scheme}://{host}".lower())
    origin = headers.get("origin")
    if origin and origin != "null":
        return origin.lower() in allowed
    referer = headers.get("referer")
    return referer is not None and _origin_of(referer) in allowed


def _forbidden() -> Response:
    return PlainTextResponse(
        "Refused: this form did not come from the console page, "
        "or it has expired. Go back, reload the page and try again.",
        status_code=403,
    )


class ConsoleGuard:
    """ASGI middleware for the /console mount."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        site = scope["app"]
        nurture_app: App = site.state.app
        path = scope["path"].rstrip("/") or "/"
        headers = Headers(scope=scope)
        if not await run_in_threadpool(owner_count, nurture_app):
            await _console_off(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD") and scope["path"].endswith("/") and path != PREFIX:
            # /console/audit/ -> /console/audit: a path of our own, never the Host header's site.
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + ("?" + query if query else "")
            await RedirectResponse(target, status_code=308)(scope, receive, send)
            return
        post = scope["method"] == "POST"
        if post and not same_origin(headers, scope.get("scheme", "http"), nurture_app):
            await _forbidden()(scope, receive, send)
            return
        cookies = _cookies(headers)
        owner = None
        session_id = cookies.get(SESSION_COOKIE, "")
        if session_id:
            owner = await run_in_threadpool(current, nurture_app, session_id, site.state.clock())
        scope.setdefault("state", {})
        scope["state"]["owner"] = owner
        scope["state"]["session_id"] = session_id if owner else None
        if owner is None and not is_public(path):
            await RedirectResponse(LOGIN, status_code=303)(scope, receive, send)
            return
        if post and path in UPLOADS:
            sent, receive = await _first_field(receive, headers)
            expected = owner.csrf_token if owner is not None else ""
            if sent is None or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                await _forbidden()(scope, receive, send)
                return
        elif post:
            body = await _read_body(receive)
            if body is None:
                return  # the client went away
            if isinstance(body, TooLarge):
                await _too_large(scope, receive, send)
                return
            if headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
                await _forbidden()(scope, receive, send)
                return
            sent = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD, [""])[0]
            expected = (
                cookies.get(LOGIN_CSRF_COOKIE, "")
                if before_a_session(path)
                else owner.csrf_token
                if owner is not None
                else ""
            )
            if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                await _forbidden()(scope, receive, send)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


def _cookies(headers: Headers) -> dict[str, str]:
    return cookie_parser(headers.get("cookie", ""))


class TooLarge:
    """A body over FORM_LIMIT (not kept)."""


async def _read_body(receive: Any) -> bytes | TooLarge | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > FORM_LIMIT:
            return TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _first_field(receive: Any, headers: Headers) -> tuple[str | None, Any]:
    """The CSRF token a multipart form sends as its first field (None if it does not), and a
    `receive` that hands on the body from its start, the rest still streamed."""
    kind, _, params = headers.get("content-type", "").partition(";")
    boundary = next(
        (
            value.strip().strip('"')
            for name, _, value in (part.strip().partition("=") for part in params.split(";"))
            if name.lower() == "boundary"
        ),
        "",
    )
    if kind.strip().lower() != UPLOAD_TYPE or not boundary:
        return None, receive
    delimiter = b"--" + boundary.encode("latin-1")
    buffered = b""
    more = True
    token: str | None = None
    while more and len(buffered) <= FIRST_FIELD_LIMIT:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, receive
        buffered += message.get("body", b"")
        more = bool(message.get("more_body", False))
        head, found, rest = buffered.partition(b"\r\n\r\n")
        end = rest.find(b"\r\n" + delimiter)
        if found and end >= 0:
            named = b'name="' + CSRF_FIELD.encode() + b'"'
            lines = head.split(b"\r\n")
            if lines[0] == delimiter and len(lines) > 1 and named in lines[1]:
                token = rest[:end].decode("utf-8", "replace")
            break
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": buffered, "more_body": more}
        message: dict[str, Any] = await receive()
        return message

    return token, replay


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _too_large(scope: Any, receive: Any, send: Any) -> None:
    await error_page(Request(scope), 413)(scope, receive, send)


async def _console_off(scope: Any, receive: Any, send: Any) -> None:
    response = PlainTextResponse(
        "The owner console is not open yet: it opens once the first owner account "
        "has been made on the server.",
        status_code=404,
    )
    await response(scope, receive, send)
