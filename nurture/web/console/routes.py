"""The console's routes, mounted under /console by nurture.web.site.

Every route sits behind ConsoleGuard: without a live session it redirects to
/console/login (only the login page and the style sheet are public), and every
POST must carry this site's Origin (or Referer) and the session's CSRF token.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from nurture.app import App
from nurture.web.console.access import ConsoleGuard
from nurture.web.console.account_pages import (
    account_page,
    change_password_page,
    code_app_confirm,
    code_app_page,
    code_app_remove,
    code_app_start,
    end_sessions_page,
    recovery_codes_page,
)
from nurture.web.console.auth import login_page, logout_page
from nurture.web.console.drafts_page import drafts_page
from nurture.web.console.inbox_pages import inbox_page, lift_hold, quiet_page
from nurture.web.console.newsletter_one import (
    newsletter_cancel,
    newsletter_edit,
    newsletter_page,
    newsletter_reschedule,
)
from nurture.web.console.newsletter_pages import draft_discard, newsletter_compose, newsletters_page
from nurture.web.console.ops_pages import audit_page, deliveries_page, release_deliveries, results_page
from nurture.web.console.owner_pages import (
    cancel_invite_page,
    invite_page,
    join_page,
    owners_page,
    remove_owner_page,
)
from nurture.web.console.paths import PREFIX
from nurture.web.console.people_add_pages import add_one, add_page, import_act, import_page, upload
from nurture.web.console.people_pages import person_action, person_page, subscribers_page
from nurture.web.console.render import ConsolePages, css_response
from nurture.web.console.series_pages import (
    series_list_page,
    series_page,
    series_publish,
    step_action,
    step_page,
)
from nurture.web.console.series_shape_pages import (
    series_add,
    series_create,
    series_discard,
    series_shape,
    series_switch,
)
from nurture.web.console.settings_pages import settings_page, settings_save
from nurture.web.console.today_page import today_page


class IdConvertor(Convertor[int]):
    """A row id in a path: up to 18 digits, so it always fits the store's 64-bit ids (a longer
    one matches no route: the console's 404, never an overflow in the database)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())


async def stylesheet(request: Request) -> Response:
    return css_response()


async def to_the_console(request: Request) -> Response:
    return RedirectResponse(PREFIX + "/", status_code=308)  # a path only: never the Host header's site


CONSOLE_ROUTES: list[BaseRoute] = [
    Route("/", today_page, methods=["GET"]),
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/logout", logout_page, methods=["POST"]),
    Route("/static/console.css", stylesheet, methods=["GET"]),
    Route("/subscribers", subscribers_page, methods=["GET"]),
    Route("/subscribers/add", add_page, methods=["GET"]),
    Route("/subscribers/add", add_one, methods=["POST"]),
    Route("/subscribers/import", upload, methods=["POST"]),
    Route("/subscribers/import/{token:str}", import_page, methods=["GET"]),
    Route("/subscribers/import/{token:str}/{action:str}", import_act, methods=["POST"]),
    Route("/subscribers/{subscriber_id:id}", person_page, methods=["GET"]),
    Route("/subscribers/{subscriber_id:id}/{action:str}", person_action, methods=["POST"]),
    Route("/deliveries", deliveries_page, methods=["GET"]),
    Route("/deliveries/release", release_deliveries, methods=["POST"]),
    Route("/results", results_page, methods=["GET"]),
    Route("/audit", audit_page, methods=["GET"]),
    Route("/inbox", inbox_page, methods=["GET"]),
    Route("/quiet", quiet_page, methods=["GET"]),
    Route("/holds/{hold_id:id}/lift", lift_hold, methods=["POST"]),
    Route("/newsletters", newsletters_page, methods=["GET"]),
    Route("/newsletters/compose", newsletter_compose, methods=["POST"]),
    Route("/newsletters/drafts/discard", draft_discard, methods=["POST"]),
    Route("/newsletters/{newsletter_id:id}", newsletter_page, methods=["GET"]),
    Route("/newsletters/{newsletter_id:id}/cancel", newsletter_cancel, methods=["POST"]),
    Route("/newsletters/{newsletter_id:id}/reschedule", newsletter_reschedule, methods=["POST"]),
    Route("/newsletters/{newsletter_id:id}/edit", newsletter_edit, methods=["POST"]),
    Route("/series", series_list_page, methods=["GET"]),
    Route("/series/create", series_create, methods=["POST"]),
    Route("/series/{slug:str}", series_page, methods=["GET"]),
    Route("/series/{slug:str}/shape", series_shape, methods=["POST"]),
    Route("/series/{slug:str}/add", series_add, methods=["POST"]),
    Route("/series/{slug:str}/pause", series_switch, methods=["POST"]),
    Route("/series/{slug:str}/resume", series_switch, methods=["POST"]),
    Route("/series/{slug:str}/discard", series_discard, methods=["POST"]),
    Route("/series/{slug:str}/publish", series_publish, methods=["POST"]),
    Route("/series/{slug:str}/{step:int}", step_page, methods=["GET"]),
    Route("/series/{slug:str}/{step:int}/{action:str}", step_action, methods=["POST"]),
    Route("/drafts", drafts_page, methods=["GET"]),
    Route("/settings", settings_page, methods=["GET"]),
    Route("/settings", settings_save, methods=["POST"]),
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", change_password_page, methods=["POST"]),
    Route("/account/sessions/end", end_sessions_page, methods=["POST"]),
    Route("/account/code-app", code_app_page, methods=["GET"]),
    Route("/account/code-app/start", code_app_start, methods=["POST"]),
    Route("/account/code-app/confirm", code_app_confirm, methods=["POST"]),
    Route("/account/code-app/remove", code_app_remove, methods=["POST"]),
    Route("/account/recovery-codes", recovery_codes_page, methods=["POST"]),
    Route("/owners", owners_page, methods=["GET"]),
    Route("/owners/invite", invite_page, methods=["POST"]),
    Route("/owners/invitations/{invite_id:id}/cancel", cancel_invite_page, methods=["POST"]),
    Route("/owners/{owner_id:id}/remove", remove_owner_page, methods=["POST"]),
    Route("/join/{token:str}", join_page, methods=["GET", "POST"]),
]


def console_routes(app: App) -> list[BaseRoute]:
    """The /console mount, or nothing when console.enabled is false."""
    if not app.config.console.enabled:
        return []
    console = Router(CONSOLE_ROUTES, redirect_slashes=False)  # the guard redirects slashes itself
    return [
        Route(PREFIX, to_the_console, methods=["GET"]),
        Mount(PREFIX, app=console, middleware=[Middleware(ConsoleGuard)]),
    ]


def console_state(app: App) -> ConsolePages:
    return ConsolePages(app)
