"""`nurture campaign`: start a series for people already on the list, pause and resume it."""

from __future__ import annotations

import click

from nurture.cli.base import Context, Group, now_option, pass_context
from nurture.cli.times import parse_now, parse_practice_time
from nurture.sending.planning import zone
from nurture.series import control


@click.group(cls=Group)
def campaign() -> None:
    """Start a series for people already on the list, pause it, resume it.

    \b
    Example:
      nurture campaign start kap-intro --at "2026-12-01 09:00"
      nurture campaign pause kap-intro
    """


@campaign.command("start")
@click.argument("name", metavar="CAMPAIGN")
@click.option(
    "--at",
    "at_text",
    metavar='"YYYY-MM-DD HH:MM"',
    help="When the series starts, in the practice's zone (default: now).",
)
@click.option("--tag", "tag_name", metavar="TAG", help="Only subscribers with this tag.")
@now_option
@pass_context
def campaign_start(
    obj: Context, name: str, at_text: str | None, tag_name: str | None, now: str | None
) -> None:
    """Enroll the active subscribers (or those with --tag) in a series from a moment on.

    Each email still goes out inside each person's own send window. People already
    in the series keep their place; people with one of its stop_on_tags are left out.

    \b
    Example:
      nurture campaign start kap-intro --at "2026-12-01 09:00" --tag open-day
    """
    app = obj.app
    moment = parse_now(now)
    at = parse_practice_time(at_text, "--at", app.config.delivery.default_timezone) if at_text else None
    result = control.start(app, name, now=moment, at=at, tag=tag_name)
    zone_name = app.config.delivery.default_timezone
    click.echo(
        f"{result.campaign}: {result.enrolled} subscriber(s) enrolled from "
        f"{result.start.astimezone(zone(zone_name)):%Y-%m-%d %H:%M} ({zone_name}); "
        f"{result.unchanged} already in it or excluded by a stop tag"
    )
    if result.paused:
        click.echo(
            f"note: {result.campaign} is paused; nothing goes "
            f"out until: nurture campaign resume {result.campaign}",
            err=True,
        )


@campaign.command("pause")
@click.argument("name", metavar="CAMPAIGN")
@now_option
@pass_context
def campaign_pause(obj: Context, name: str, now: str | None) -> None:
    """Hold a series: nobody gets its next email until it is resumed.

    \b
    Example:
      nurture campaign pause kap-intro
    """
    changed = control.pause(obj.app, name, parse_now(now))
    click.echo(f"{name}: paused" if changed else f"{name} was already paused: nothing changed")


@campaign.command("resume")
@click.argument("name", metavar="CAMPAIGN")
@now_option
@pass_context
def campaign_resume(obj: Context, name: str, now: str | None) -> None:
    """Release a paused series: emails that fell due go out in each person's next window.

    \b
    Example:
      nurture campaign resume kap-intro
    """
    changed = control.resume(obj.app, name, parse_now(now))
    click.echo(f"{name}: resumed" if changed else f"{name} was not paused: nothing changed")


def register(cli: click.Group) -> None:
    cli.add_command(campaign)
