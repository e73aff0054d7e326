"""`nurture summary`: the owner's weekly email on demand."""

from __future__ import annotations

import click

from nurture.cli.base import Context, now_option, pass_context
from nurture.cli.times import parse_now
from nurture.reporting.notices import send_summary


@click.command()
@click.option(
    "--to",
    "to",
    metavar="ADDRESS",
    help="Send it here instead of practice.owner_email (a preview; the week's summary is still due).",
)
@now_option
@pass_context
def summary(obj: Context, to: str | None, now: str | None) -> None:
    """Email the owner a summary of the last 7 days: new subscribers, emails sent per
    series step and newsletter, unsubscribes, bounces, complaints, stuck or failed
    emails, and anything that needs attention.

    `nurture run` sends it by itself every Monday at 08:00 (delivery.default_timezone).
    Without the daemon, let cron send it.

    \b
    Example (crontab, Mondays 08:00 server time):
      0 8 * * 1 cd /srv/nurture && .venv/bin/nurture summary >> send.log 2>&1
    """
    numbers = send_summary(obj.app, parse_now(now), to=to)
    click.echo(
        f"summary sent: {numbers.sent_total} emails sent, {numbers.new_subscribers} new subscribers, "
        f"{numbers.unsubscribes} unsubscribes, {numbers.bounces} bounces, {numbers.complaints} complaints, "
        f"{numbers.failed} failed, {numbers.stuck.stuck} stuck"
    )


def register(cli: click.Group) -> None:
    cli.add_command(summary)
