"""What the owner reviews before publishing a series (the console's series pages): its
files (the draft) beside its published version, the changes between them, the check
findings, the publish plan, and publishing once all is well.

The same domain calls as `nurture campaign diff` and `nurture campaign publish`
(nurture.series.drafts for the draft and its findings, nurture.series.plan and
nurture.series.publish), so the console and the command line cannot disagree.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from nurture.content.campaigns import Campaign, EmailSource
from nurture.content.rendering import Renderer
from nurture.content.rules import Finding
from nurture.errors import ContentError, InputError, NotFound
from nurture.series.catalog import SeriesStore
from nurture.series.drafts import draft_findings, load_draft
from nurture.series.plan import PublishPlan, plan
from nurture.series.publish import publish
from nurture.store import models as m
from nurture.store.db import reading


@dataclass
class SeriesState:
    """What the console shows of one series: the files, what is live, and what publishing would do."""

    slug: str
    campaign: Campaign  # the files when they load, else the published version (so the page still opens)
    published: Campaign | None
    load_error: str | None = None  # the files do not load: publishing waits for the fix
    findings: list[Finding] = field(default_factory=list)
    plan: PublishPlan | None = None  # None when the files do not load
    skips_if_ahead: int = 0  # (person, email) pairs that "only ahead" would skip

    @property
    def publishable(self) -> bool:
        if self.plan is None or self.findings:
            return False
        return self.plan.old_version is None or not self.plan.diff.empty


def published_version(app: SeriesStore, slug: str) -> Campaign | None:
    # Only reads: a folder never published becomes version 1 when the sending pass first uses it.
    return app.catalog.refresh(app.engine, create=False).get(slug)


def ensure_published(app: SeriesStore, now: datetime) -> None:
    """Store the files of any series never published as its version 1, as a sending pass would.

    Called before the console writes a series file, so the edit is a draft against the
    files as they were, not silently part of version 1."""
    app.catalog.refresh(app.engine, now)


def series_state(app: SeriesStore, slug: str) -> SeriesState | None:
    """The series named `slug`, or None when there is neither such a folder nor a published version."""
    published = published_version(app, slug)
    try:
        draft = load_draft(app.config, slug)
    except NotFound:
        if published is None:
            return None
        return SeriesState(
            slug, published, published, load_error=f"the folder {app.config.campaigns_dir / slug} is missing"
        )
    except ContentError as exc:
        if published is None:
            raise
        return SeriesState(slug, published, published, load_error=str(exc))
    # A fresh renderer: the app's keeps every email it prepares, and these files change with each save.
    findings = draft_findings(app.config, Renderer(app.config), draft)
    # A problem in config.yaml is found once per email; she needs to read it once.
    findings = list({str(finding): finding for finding in findings}.values())
    default = plan(app, draft)
    ahead = (
        plan(app, draft, only_ahead=True)
        if default.diff.of_kind("added") and default.old_version is not None
        else None
    )
    return SeriesState(
        slug, draft, published, findings=findings, plan=default, skips_if_ahead=ahead.skipped if ahead else 0
    )


def publish_series(
    app: SeriesStore, slug: str, now: datetime, *, only_ahead: bool, expected_version: int
) -> tuple[PublishPlan | None, list[str]]:
    """Publish the files of `slug` when every check passes. Returns (the plan carried out, []),
    or (None, the reasons it was refused); nothing changes when refused."""
    state = series_state(app, slug)
    if state is None:
        raise NotFound(f"no series {slug}")
    if state.load_error is not None:
        return None, [state.load_error]
    if state.findings:
        return None, [str(finding) for finding in state.findings]
    assert state.plan is not None  # set whenever the files load
    if state.plan.new_version != expected_version:
        return None, [
            f"someone published version {state.plan.new_version - 1} "
            "meanwhile: read the new plan below, then publish again"
        ]
    if not state.publishable:
        raise InputError("the files match the published version: there is nothing to publish")
    return publish(app, state.campaign, now, only_ahead=only_ahead), []


def waiting_by_key(app: SeriesStore, slug: str) -> dict[str, int]:
    """How many people in the series wait for each email, by its key."""
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Enrollment.next_step_key, func.count())
            .where(m.Enrollment.campaign == slug, m.Enrollment.status == m.EnrollmentStatus.ACTIVE)
            .group_by(m.Enrollment.next_step_key)
        ).all()
    return {str(key): int(count) for key, count in rows if key is not None}


def email_changes(published: EmailSource | None, draft: EmailSource | None) -> list[str]:
    """One email's changes since it was published: front-matter fields, then the text as a unified diff."""
    if published is None:
        return ["+ a new email: not in the published version"] if draft is not None else []
    if draft is None:
        return []
    before = published.front.model_dump()
    after = draft.front.model_dump()
    lines = [
        f"~ {name}: {before.get(name)!r} -> {after.get(name)!r}"
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
    lines += difflib.unified_diff(
        published.body.splitlines(),
        draft.body.splitlines(),
        fromfile="published",
        tofile="draft",
        lineterm="",
    )
    return lines
