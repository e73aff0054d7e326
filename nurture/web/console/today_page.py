"""/console/: the owner's day at a glance."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from nurture.reporting.today import today
from nurture.web.console.render import pages_of


async def today_page(request: Request) -> Response:
    info = await run_in_threadpool(today, request.app.state.app, request.app.state.clock())
    flash = (
        "Hold lifted: from the next sending pass on."
        if request.query_params.get("done") == "lifted"
        else None
    )
    return pages_of(request).render(request, "today.html", title="Today", info=info, flash=flash)
