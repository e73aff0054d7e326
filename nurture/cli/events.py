"""`nurture events poll` (SES's queue), `nurture bounces fetch` (SMTP bounce mail) and
`nurture retention apply`: for cron; `nurture run` polls the queue and applies retention itself."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from nurture import event_feeds
from nurture.cli.base import Context, Group, now_option, pass_context
from nurture.cli.times import parse_now
from nurture.retention import apply_retention


@click.group(cls=Group)
def events() -> None:
    """Provider events nurture fetches itself (Amazon SES through an SQS queue).

    \b
    Example (crontab, every minute):
      * * * * * cd /srv/nurture && .venv/bin/nurture events poll >> events.log 2>&1
    """


@events.command("poll")
@click.option(
    "--wait",
    type=click.IntRange(min=0, max=20),
    default=5,
    show_default=True,
    help="Seconds to wait for the first message (SQS long polling).",
)
@pass_context
def events_poll(obj: Context, wait: int) -> None:
    """Read the SES events queue (ses.events_queue_url) until it is empty: store each event
    once, settle the emails it names, suppress bounced, complaining and unsubscribed people.

    A message is deleted from the queue only after its events are stored, so stopping
    this command at any moment loses nothing.

    \b
    Example:
      nurture events poll --wait 0
    """
    report = event_feeds.poll_ses_queue(obj.app, lambda: datetime.now(UTC), wait_seconds=wait)
    click.echo(
        f"ses queue: {report.received} received, {report.stored} stored, {report.duplicates} duplicate, "
        f"{report.malformed} malformed, {report.suppressed} suppressed, {report.settled} settled"
    )


@click.group(cls=Group)
def bounces() -> None:
    """Bounce mail of the SMTP transport (smtp.bounces_maildir or smtp.bounces_imap_host).

    \b
    Example (crontab, every 10 minutes):
      */10 * * * * cd /srv/nurture && .venv/bin/nurture bounces fetch >> bounces.log 2>&1
    """


@bounces.command("fetch")
@now_option
@pass_context
def bounces_fetch(obj: Context, now: str | None) -> None:
    """Read the bounce mailbox and apply each delivery status notification (RFC 3464):
    a permanent failure (5.x.x) suppresses the person, a temporary one (4.x.x) is recorded.

    Safe to run again: a bounce already applied is not applied twice.

    \b
    Example:
      nurture bounces fetch
    """
    moment = parse_now(now)
    report = event_feeds.fetch_bounces(obj.app, lambda: moment)
    click.echo(
        f"bounce mail: {report.received} read, {report.stored} stored, {report.duplicates} duplicate, "
        f"{report.malformed} not a bounce, {report.suppressed} suppressed, {report.settled} settled"
    )


@click.group(cls=Group)
def retention() -> None:
    """Data kept no longer than needed (the retention: section of config.yaml).

    \b
    Example (crontab, daily at 03:00):
      0 3 * * * cd /srv/nurture && .venv/bin/nurture retention apply >> retention.log 2>&1
    """


@retention.command("apply")
@now_option
@pass_context
def retention_apply(obj: Context, now: str | None) -> None:
    """Delete provider events older than retention.provider_events (each email keeps its counts
    for the results pages) and clear provider ids and errors from deliveries older than
    retention.deliveries. `nurture run` does this once a day.

    \b
    Example:
      nurture retention apply
    """
    report = apply_retention(obj.app, parse_now(now))
    click.echo(report.line())


def register(cli: click.Group) -> None:
    cli.add_command(events)
    cli.add_command(bounces)
    cli.add_command(retention)
