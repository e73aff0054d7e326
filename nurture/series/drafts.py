"""A series' files as they are now (the draft), loaded and checked before they may be published."""

from __future__ import annotations

from nurture.config import Config
from nurture.content.campaigns import NEWSLETTERS_DIR, Campaign, load_campaign
from nurture.content.checks import check_email, findings_from_error
from nurture.content.rendering import Renderer
from nurture.content.rules import Finding
from nurture.errors import ContentError, NotFound


def load_draft(config: Config, slug: str) -> Campaign:
    """campaigns/<slug>/ as it is now; NotFound if there is no such folder, ContentError if it does
    not load."""
    folder = config.campaigns_dir / slug
    if slug == NEWSLETTERS_DIR or slug.startswith(".") or "/" in slug or not folder.is_dir():
        known = (
            sorted(
                path.name
                for path in config.campaigns_dir.iterdir()
                if path.is_dir() and path.name != NEWSLETTERS_DIR and not path.name.startswith(".")
            )
            if config.campaigns_dir.is_dir()
            else []
        )
        raise NotFound(f"no series folder {folder} (series: {', '.join(known) or 'none'})")
    return load_campaign(folder)


def draft_findings(config: Config, renderer: Renderer, campaign: Campaign) -> list[Finding]:
    """Every `nurture check` rule on every email of the draft, rendered for the sample subscriber."""
    findings: list[Finding] = []
    for step in campaign.steps:
        try:
            prepared = renderer.prepare_step(campaign, step)
        except ContentError as exc:
            # The same reading of a ContentError as `nurture check` gives.
            findings.extend(findings_from_error(exc))
            continue
        findings.extend(check_email(config, renderer, step.email, prepared))
    return findings
