"""The console's pages: Jinja2 templates (autoescaped), one style sheet served from
/console/static/console.css, no scripts, and a CSP that allows nothing else."""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from nurture.app import App
from nurture.config import Config
from nurture.owners.sessions import OwnerSessionInfo
from nurture.sending.planning import zone
from nurture.web.console.paths import CSRF_FIELD, PREFIX
from nurture.web.console.words import in_her_words

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
NAV = (
    ("Today", PREFIX + "/"),
    ("Subscribers", PREFIX + "/subscribers"),
    ("Newsletters", PREFIX + "/newsletters"),
    ("Series", PREFIX + "/series"),
    ("Drafts", PREFIX + "/drafts"),
    ("Deliveries", PREFIX + "/deliveries"),
    ("Results", PREFIX + "/results"),
    ("Settings", PREFIX + "/settings"),
    ("Inbox", PREFIX + "/inbox"),
    ("Audit log", PREFIX + "/audit"),
    ("Owners", PREFIX + "/owners"),
    ("Your account", PREFIX + "/account"),
)


def stylesheet() -> str:
    return files("nurture.web.console").joinpath("static", "console.css").read_text(encoding="utf-8")


class ConsolePages:
    def __init__(self, app: App) -> None:
        self.app = app
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("nurture.web.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["local"] = self.local
        self.env.filters["plural"] = plural
        self.env.filters["her_words"] = in_her_words
        self.env.filters["age"] = age

    @property
    def config(self) -> Config:
        # Read at each use: a setting saved in the console (the practice's zone) applies at once.
        return self.app.config

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.config.delivery.default_timezone)

    def local(self, value: datetime | None, pattern: str = "%d %b %Y, %H:%M") -> str:
        """A time in the practice's zone, as people write it."""
        if value is None:
            return "never"
        return value.astimezone(self.tz).strftime(pattern)

    def render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        email_styles: list[str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        # Error pages can come before the console's guard has looked for a session.
        owner: OwnerSessionInfo | None = getattr(request.state, "owner", None)
        # Forms that come before a session (sign in, accept an invitation) carry the double-submit
        # token as `login_csrf`; every other form the session's token.
        login_csrf = context.pop("login_csrf", "")
        page = self.env.get_template(template).render(
            practice=self.config.practice,
            owner=owner,
            csrf_field=CSRF_FIELD,
            csrf_token=owner.csrf_token if owner else login_csrf,
            login_csrf=login_csrf,
            nav=NAV,
            here=request.url.path,
            zone_name=self.tz.key,
            **context,
        )
        return HTMLResponse(page, status_code=status, headers=page_headers(email_styles))


def page_headers(email_styles: list[str] | None = None) -> dict[str, str]:
    csp = CSP
    if email_styles:
        # Framed email previews (srcdoc inherits this policy): their styles by hash, nothing inline else.
        csp = csp.replace("style-src 'self'", "style-src 'self' 'unsafe-hashes' " + " ".join(email_styles))
    return {"Content-Security-Policy": csp, "Cache-Control": "no-store"}


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def age(elapsed: timedelta) -> str:
    """How long ago, as people say it."""
    minutes = int(elapsed.total_seconds() // 60)
    if minutes < 2:
        return "just now"
    if minutes < 120:
        return f"{minutes} minutes ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} hours ago"
    return f"{minutes // (24 * 60)} days ago"


def pages_of(request: Request) -> ConsolePages:
    pages: ConsolePages = request.app.state.console_pages
    return pages


ERRORS = {
    400: (
        "That did not work",
        "The form that was sent could not be read, so nothing was changed. Reload the page and try again.",
    ),
    404: ("Page not found", "There is no such page in the console. Pick one from the menu."),
    405: ("Not allowed", "This page cannot be used that way. Go back and use the page's own buttons."),
    413: (
        "Too large to take",
        "The form you sent holds more than 2 MB, so nothing was saved or changed. What you typed "
        "is still in the form: use your browser's Back button, make it shorter, and send it again.",
    ),
    500: (
        "Something went wrong",
        "Sorry, that did not work, and nothing was changed. Try again in a minute; if it keeps "
        "happening, tell whoever looks after the server what you were doing and when.",
    ),
}


def error_page(request: Request, status: int) -> HTMLResponse:
    """The console's own page for an error answer: its look, its menu (when signed in), its words."""
    title, paragraph = ERRORS.get(status, ERRORS[500])
    back = PREFIX + "/" if getattr(request.state, "owner", None) is not None else None
    return pages_of(request).render(
        request, "message.html", status=status, title=title, paragraphs=[paragraph], back=back
    )


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def css_response() -> Response:
    return Response(stylesheet(), media_type="text/css", headers={"Cache-Control": "no-store"})
