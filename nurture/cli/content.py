"""Commands for the owner's content: `nurture check` and `nurture preview`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nurture.cli.base import Context, pass_context
from nurture.content.checks import check_content
from nurture.content.preview import write_preview


@click.command()
@pass_context
def check(obj: Context) -> None:
    """Validate config, campaigns and templates, and lint every email.

    Exits 1 with each finding as file:line and what is wrong, or 0 when all pass.

    \b
    Example:
      nurture check
    """
    report = check_content(obj.config)
    for finding in report.findings:
        click.echo(str(finding))
    click.echo(report.summary())
    sys.exit(report.exit_code)


@click.command()
@click.argument("campaign", required=False)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("preview"),
    show_default=True,
    help="Folder to write into.",
)
@pass_context
def preview(obj: Context, campaign: str | None, out_dir: Path) -> None:
    """Render every email (or one campaign's) for a sample subscriber, with a gallery page.

    Writes NN-slug.html, .txt and .eml per email and index.html showing each at
    600 px and 375 px wide. Open index.html in a browser.

    \b
    Example:
      nurture preview kap-intro --out preview
    """
    index = write_preview(obj.config, out_dir, campaign)
    click.echo(f"preview written: open {index.resolve()}")


def register(cli: click.Group) -> None:
    cli.add_command(check)
    cli.add_command(preview)
