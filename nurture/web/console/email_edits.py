"""Emails edited in the owner console: writing what she typed, previews and checks.

A series email is edited in place: under versioned series the campaign files are the
draft, and nothing of them goes out until the series is published (series_pages).
A newsletter's draft is kept by nurture.newsletter_drafts until it is scheduled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from nurture.app import App
from nurture.config import Config
from nurture.content.campaigns import Campaign, EmailSource, Step, email_from_text
from nurture.content.checks import check_email, findings_from_error
from nurture.content.prepared import PreparedEmail, RenderedEmail
from nurture.content.preview import newsletter_name, sample_recipient
from nurture.content.rendering import Renderer
from nurture.content.rules import Finding
from nurture.errors import ContentError
from nurture.newsletter_drafts import write_text


def write_email(path: Path, text: str) -> Path:
    """Replace a series email's file with what she typed, in one step."""
    return write_text(path, text)


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
    config: Config, text: str, path: Path, *, campaign: Campaign | None = None, step: Step | None = None
) -> Checked:
    """`text` as the email file `path` (the one she is editing), prepared, rendered and checked.
    Findings name `path`, whether or not the text is saved there yet."""
    try:
        source = email_from_text(path, text)
        prepared = prepare(config, source, campaign=campaign, step=step)
    except ContentError as exc:
        return Checked(None, None, findings_from_error(exc))
    renderer = Renderer(config)
    findings = check_email(config, renderer, source, prepared)
    try:
        rendered = prepared.render(sample_recipient(config, prepared.name).recipient)
    except ContentError as exc:
        return Checked(prepared, None, findings or findings_from_error(exc))
    return Checked(prepared, rendered, findings)


def test_copy_words(app: App, address: str) -> str:
    """What became of a test copy: the outbox keeps files on the server, it sends nothing."""
    if app.transport.name == "outbox":
        return (
            "Test copy made. This installation does not send real email yet: it keeps each email "
            "as a file on the server, so nothing reaches your inbox."
        )
    return f"Test copy sent to {address}."
