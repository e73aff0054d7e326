"""The `nurture` command: a thin shell over the Python API.

Every command's help ends with an example (a test fails when one lacks it).
User mistakes print one clear line and exit non-zero, never a traceback.
Each group of commands lives in its own module and adds itself with register(cli).
"""

from __future__ import annotations

import click

from nurture.cli import (
    campaigns,
    content,
    db,
    events,
    inbox,
    newsletters,
    owners,
    reports,
    sending,
    series,
    subscribers,
    summary,
    web,
)
from nurture.cli.base import Context, Group


@click.group(cls=Group)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="NURTURE_CONFIG",
    help="Config file (default: ./config.yaml).",
)
@click.version_option(package_name="nurture")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """nurture: a KAP practice's email series and newsletters.

    \b
    Example:
      nurture subscribe sam@example.com --first-name Sam
    """
    ctx.obj = Context(config_path)
    ctx.call_on_close(ctx.obj.close)


# series adds publish and diff to the campaign group, so it comes after campaigns.
for commands in (
    db,
    subscribers,
    sending,
    content,
    web,
    newsletters,
    campaigns,
    series,
    reports,
    summary,
    owners,
    inbox,
    events,
):
    commands.register(cli)


def main() -> None:
    cli(prog_name="nurture")


if __name__ == "__main__":
    main()
