"""Emails edited in the owner console: writing what she typed, previews and checks.

A series email is edited in place: under versioned series the campaign files are the
draft, and nothing of them goes out until the series is published (series_pages).
A newsletter's draft is campaigns/newsletters/drafts/<name>.md, which the newsletter
list does not read, until it is scheduled.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path

from nurture.config import Config
from nurture.content.campaigns import Campaign, EmailSource, Step, load_email
from nurture.content.checks import check_email
from nurture.content.prepared import PreparedEmail, RenderedEmail
from nurture.content.preview import newsletter_name, sample_recipient
from nurture.content.rendering import Renderer
from nurture.content.rules import Finding
from nurture.errors import ContentError, InputError

DRAFTS = "drafts"
MAX_SOURCE = 200_000


def draft_path(live: Path) -> Path:
    return live.parent / DRAFTS / live.name


def write_email(path: Path, text: str) -> Path:
    """Replace the file at `path` with `text` in one step (a pass reading it never sees half of it)."""
    if len(text) > MAX_SOURCE:
        raise InputError(f"the email is too long ({len(text)} characters): keep it under {MAX_SOURCE}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Browsers send CRLF line ends from a textarea; the files use LF.
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(text.replace("\r\n", "\n"), encoding="utf-8")
    temp.replace(path)
    return path


def write_draft(live: Path, text: str) -> Path:
    """A newsletter's draft, beside the file it will become."""
    return write_email(draft_path(live), text)


def discard_draft(live: Path) -> bool:
    path = draft_path(live)
    if path.exists():
        path.unlink()
        return True
    return False


@dataclass(frozen=True)
class Checked:
    """One email prepared, rendered for the sample subscriber, and checked."""

    prepared: PreparedEmail | None
    rendered: RenderedEmail | None
    findings: list[Finding]


def prepare(
    config: Config, source: EmailSource, *, campaign: Campaign | None = None, step: Step | None = None
) -> PreparedEmail:
    # A fresh renderer: the app's caches every email it prepares, and drafts change at every keystroke.
    renderer = Renderer(config)
    if campaign is not None and step is not None:
        return renderer.prepare_step(campaign, dataclasses.replace(step, email=source))
    return renderer.prepare_newsletter(source, newsletter_name(source.path))


def check(
    config: Config, path: Path, shown_as: Path, *, campaign: Campaign | None = None, step: Step | None = None
) -> Checked:
    """Load the file at `path`, prepare, render and check it; problems are named against `shown_as`."""
    try:
        source = dataclasses.replace(load_email(path), path=shown_as)
        prepared = prepare(config, source, campaign=campaign, step=step)
    except ContentError as exc:
        return Checked(None, None, [Finding(shown_as, None, line) for line in str(exc).splitlines()])
    renderer = Renderer(config)
    findings = check_email(config, renderer, source, prepared)
    try:
        rendered = prepared.render(sample_recipient(config, prepared.name).recipient)
    except ContentError as exc:
        return Checked(prepared, None, findings or [Finding(shown_as, None, str(exc))])
    return Checked(prepared, rendered, findings)
