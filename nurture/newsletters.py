"""Newsletters the owner schedules: stored as approved at scheduling time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nurture.app import App
from nurture.campaigns import EmailSource, FrontMatter
from nurture.errors import NotFound
from nurture.store import models as m
from nurture.store.db import transaction

if TYPE_CHECKING:
    from nurture.rendering import PreparedEmail


def stored_content(source: EmailSource) -> dict[str, Any]:
    """What is kept of a newsletter file when it is scheduled."""
    return {"front": source.front.model_dump(), "body": source.body, "body_line": source.body_line}


def source_from_stored(path: str, content: dict[str, Any]) -> EmailSource:
    return EmailSource(
        path=Path(path),
        front=FrontMatter.model_validate(content["front"]),
        body=content["body"],
        body_line=int(content.get("body_line", 1)),
    )


def prepare_stored_newsletter(app: App, newsletter_id: int) -> "PreparedEmail":
    """The newsletter as approved, compiled once per process (the renderer caches by name)."""
    with transaction(app.engine) as session:
        newsletter = session.get(m.Newsletter, newsletter_id)
        if newsletter is None:
            raise NotFound(f"newsletter {newsletter_id} does not exist")
        source = source_from_stored(newsletter.source_file, newsletter.content)
    return app.renderer.prepare_newsletter(source, name=f"newsletter:{newsletter_id}")
