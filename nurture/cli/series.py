"""`nurture campaign publish` and `nurture campaign diff`: a series' files become what is sent
only when published."""

from __future__ import annotations

import click

from nurture.cli.base import Context, now_option, pass_context
from nurture.cli.times import parse_now
from nurture.errors import InputError
from nurture.series.drafts import draft_findings, load_draft
from nurture.series.plan import plan
from nurture.series.publish import publish


def _live(version: int | None) -> str:
    return f"version {version} stays live" if version is not None else "nothing of it is live yet"


@click.command("publish")
@click.argument("slug", metavar="CAMPAIGN")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation after showing the plan.")
@click.option(
    "--only-ahead",
    is_flag=True,
    help="People already past an added email skip it (default: everyone still in the series gets it).",
)
@now_option
@pass_context
def campaign_publish(obj: Context, slug: str, yes: bool, only_ahead: bool, now: str | None) -> None:
    """Publish a series' files as its next version: from then on the sending pass sends that.

    Until published, edits to campaigns/CAMPAIGN/ are a draft and change nothing that
    goes out. Every `nurture check` rule runs first (any problem refuses it); then the
    plan shows each added, removed, moved or edited email and changed delay, how many
    people each affects and what each group receives next, and asks to confirm.

    \b
    Example:
      nurture campaign publish kap-intro
      nurture campaign publish kap-intro --only-ahead --yes
    """
    app = obj.app
    draft = load_draft(app.config, slug)
    findings = draft_findings(app.config, app.renderer, draft)
    preview = plan(app, draft, only_ahead=only_ahead)
    if findings:
        for finding in findings:
            click.echo(str(finding), err=True)
        count = len(findings)
        raise InputError(
            f"{slug} was not published: {count} problem{'s' if count != 1 else ''} "
            f"to fix first; {_live(preview.old_version)}"
        )
    for line in preview.lines():
        click.echo(line)
    if preview.old_version is not None and preview.diff.empty:
        return
    if not yes and not click.confirm(f"Publish {slug} version {preview.new_version}?", err=True):
        raise InputError(f"not published; {_live(preview.old_version)}")
    result = publish(app, draft, parse_now(now), only_ahead=only_ahead)
    click.echo(f"published {slug} version {result.new_version}: the next sending pass sends from it")


@click.command("diff")
@click.argument("slug", metavar="CAMPAIGN")
@click.option(
    "--only-ahead", is_flag=True, help="Show the plan as `publish --only-ahead` would carry it out."
)
@pass_context
def campaign_diff(obj: Context, slug: str, only_ahead: bool) -> None:
    """Show what publishing a series' files would change, and for whom. Changes nothing.

    \b
    Example:
      nurture campaign diff kap-intro
    """
    app = obj.app
    draft = load_draft(app.config, slug)
    preview = plan(app, draft, only_ahead=only_ahead)
    for line in preview.lines():
        click.echo(line)
    findings = draft_findings(app.config, app.renderer, draft)
    for finding in findings:
        click.echo(f"problem: {finding}", err=True)
    if findings:
        click.echo(
            f"note: publishing is refused until the {len(findings)} problem(s) above are fixed", err=True
        )


def register(cli: click.Group) -> None:
    """Add publish and diff to the `campaign` group (start, pause, resume live elsewhere)."""
    group = cli.commands.get("campaign")
    if not isinstance(group, click.Group):
        raise RuntimeError("register the `campaign` group before nurture.cli.series")
    group.add_command(campaign_publish)
    group.add_command(campaign_diff)
