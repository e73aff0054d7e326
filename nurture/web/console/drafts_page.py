"""/console/drafts: everything written here and not yet out, with its age: newsletters being
written, and series whose emails or shape differ from what is published (or that were made
here and never published). Each can be opened or thrown away from here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from nurture.app import App
from nurture.content.campaigns import NEWSLETTERS_DIR
from nurture.errors import NurtureError
from nurture.newsletter_drafts import list_drafts
from nurture.series.drafts import load_draft
from nurture.series.plan import plan
from nurture.series.structure import is_new_series
from nurture.web.console.render import pages_of


@dataclass(frozen=True)
class SeriesDraft:
    slug: str
    title: str
    changes: int  # emails added, removed, moved, edited or re-timed
    saved_at: datetime
    new: bool  # made here, never published


def series_drafts(app: App) -> list[SeriesDraft]:
    root = app.config.campaigns_dir
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or folder.name == NEWSLETTERS_DIR or folder.name.startswith("."):
            continue
        try:
            draft = load_draft(app.config, folder.name)
            preview = plan(app, draft)
        except NurtureError:
            continue  # a folder that does not load: the series page says why
        new = is_new_series(folder)
        if not new and (preview.old_version is None or preview.diff.empty):
            continue
        times = [path.stat().st_mtime for path in folder.iterdir() if path.is_file()]
        found.append(
            SeriesDraft(
                folder.name,
                draft.title,
                len(preview.diff.changes) + len(preview.diff.settings),
                datetime.fromtimestamp(max(times), UTC),
                new,
            )
        )
    return sorted(found, key=lambda item: item.saved_at, reverse=True)


async def drafts_page(request: Request) -> Response:
    app: App = request.app.state.app
    letters = await run_in_threadpool(list_drafts, app.config)
    series = await run_in_threadpool(series_drafts, app)
    done = request.query_params.get("done")
    return pages_of(request).render(
        request,
        "drafts.html",
        title="Drafts",
        letters=letters,
        series=series,
        now=request.app.state.clock(),
        flash="Draft discarded." if done == "discarded" else None,
    )
