"""Emails edited in the owner console: drafts beside the live files, previews, checks,
test copies and publishing.

A draft of campaigns/<slug>/03-x.md is campaigns/<slug>/drafts/03-x.md; of a newsletter
campaigns/newsletters/<name>.md, campaigns/newsletters/drafts/<name>.md. Neither the
series loader nor the newsletter list reads drafts/, so a draft never goes out.

`publish_draft` is the hook for versioned series: today it checks the draft and moves
it over the live file; the versioned-series work replaces it with a published version,
its diff and the plan for people already in the series.
"""

from __future__ import annotations

import dataclasses
import difflib
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from nurture import links
from nurture.app import App
from nurture.audience.addresses import normalize_email
from nurture.config import Config
from nurture.content.campaigns import Campaign, EmailSource, Step, load_email
from nurture.content.checks import check_email
from nurture.content.prepared import PreparedEmail, Recipient, RenderedEmail
from nurture.content.preview import newsletter_name, sample_recipient
from nurture.content.rendering import Renderer
from nurture.content.rules import Finding
from nurture.errors import ContentError, InputError

DRAFTS = "drafts"
TEST_PREFIX = "[TEST] "
MAX_SOURCE = 200_000


def draft_path(live: Path) -> Path:
    return live.parent / DRAFTS / live.name


def write_draft(live: Path, text: str) -> Path:
    if len(text) > MAX_SOURCE:
        raise InputError(f"the email is too long ({len(text)} characters): keep it under {MAX_SOURCE}")
    path = draft_path(live)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Browsers send CRLF line ends from a textarea; the files use LF.
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(text.replace("\r\n", "\n"), encoding="utf-8")
    temp.replace(path)
    return path


def discard_draft(live: Path) -> bool:
    path = draft_path(live)
    if path.exists():
        path.unlink()
        return True
    return False


def diff(live: Path) -> list[str]:
    """The draft against the live file, as unified-diff lines (empty when there is no draft)."""
    draft = draft_path(live)
    if not draft.exists():
        return []
    before = live.read_text(encoding="utf-8").splitlines() if live.exists() else []
    after = draft.read_text(encoding="utf-8").splitlines()
    return list(difflib.unified_diff(before, after, fromfile="published", tofile="draft", lineterm=""))


def parse_text(text: str, shown_as: Path) -> EmailSource:
    """An email from text not yet saved, its problems reported against `shown_as`."""
    with tempfile.TemporaryDirectory() as folder:
        temp = Path(folder) / shown_as.name
        temp.write_text(text.replace("\r\n", "\n"), encoding="utf-8")
        try:
            source = load_email(temp)
        except ContentError as exc:
            raise ContentError(str(exc).replace(str(temp), str(shown_as))) from None
    return dataclasses.replace(source, path=shown_as)


@dataclass(frozen=True)
class Checked:
    """One email prepared, rendered for the sample subscriber, and checked."""

    prepared: PreparedEmail | None
    rendered: RenderedEmail | None
    findings: list[Finding]


def prepare(config: Config, source: EmailSource, *, campaign: Campaign | None = None, step: Step | None = None) -> PreparedEmail:
    # A fresh renderer: the app's caches every email it prepares, and drafts change at every keystroke.
    renderer = Renderer(config)
    if campaign is not None and step is not None:
        return renderer.prepare_step(campaign, dataclasses.replace(step, email=source))
    return renderer.prepare_newsletter(source, newsletter_name(source.path))


def check(config: Config, path: Path, shown_as: Path, *, campaign: Campaign | None = None, step: Step | None = None) -> Checked:
    """Load the file at `path` (a draft or the live file), prepare, render and check it."""
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


def send_test_copy(app: App, prepared: PreparedEmail, to_address: str) -> str:
    """One copy to `to_address`, subject prefixed [TEST]; not a delivery, not in stats. Returns the address.

    Its unsubscribe link opens a page saying it is a test copy, and changes nothing."""
    address, _ = normalize_email(to_address)
    recipient = Recipient(email=address, first_name=None, unsubscribe_url=links.test_copy_unsubscribe_url(app.config))
    envelope = prepared.envelope(f"test-{uuid.uuid4().hex[:12]}", recipient, {"kind": "test"})
    envelope = dataclasses.replace(envelope, subject=TEST_PREFIX + envelope.subject)
    outcomes = app.transport.send(prepared.batch([envelope]))
    outcome = outcomes[0] if outcomes else None
    if outcome is None or outcome.status != "sent":
        raise InputError(f"the test copy was not sent: {outcome.error if outcome is not None else 'the transport gave no outcome'}")
    return address


def publish_draft(config: Config, live: Path, *, campaign: Campaign | None = None, step: Step | None = None) -> list[Finding]:
    """Replace the live file with its draft when the draft passes every check.

    Returns the findings that stopped it (nothing changed then), or [] when published.
    The hook the versioned-series work replaces with versions, a diff and a plan.
    """
    draft = draft_path(live)
    if not draft.exists():
        raise InputError("there is no draft to publish: edit the email and save it as a draft first")
    checked = check(config, draft, live, campaign=campaign, step=step)
    if checked.findings:
        return checked.findings
    draft.replace(live)
    return []
