"""`nurture newsletter`: schedule, list, cancel and test newsletters."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from nurture.cli.base import Context, Group, now_option, pass_context
from nurture.cli.times import parse_now
from nurture.newsletters import cancel, list_newsletters, schedule, send_test


@click.group(cls=Group)
def newsletter() -> None:
    """Schedule, list, cancel and test newsletters (campaigns/newsletters/*.md).

    \b
    Example:
      nurture newsletter schedule campaigns/newsletters/2026-12-winter-note.md --at "2026-12-01 09:00"
      nurture newsletter list
    """


@newsletter.command("schedule")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--at", "at_text", required=True, metavar='"YYYY-MM-DD HH:MM"', help="Local date and time to send."
)
@click.option(
    "--timezone",
    "mode",
    type=click.Choice(["practice", "subscriber"]),
    default="practice",
    show_default=True,
    help="practice: one instant, --at in the practice's zone; "
    "subscriber: --at in each subscriber's own zone.",
)
@click.option(
    "--again",
    is_flag=True,
    help="Schedule it even though a newsletter with the same content is already scheduled or sent.",
)
@now_option
@pass_context
def newsletter_schedule(
    obj: Context, file: Path, at_text: str, mode: str, again: bool, now: str | None
) -> None:
    """Check a newsletter and schedule it. Any `nurture check` problem refuses it.

    What is scheduled is the file as it is now: later edits do not change it
    (cancel and schedule again to send a new version). A file whose content is
    already scheduled or sent is refused, naming that newsletter, unless --again.

    \b
    Example:
      nurture newsletter schedule campaigns/newsletters/2026-12-winter-note.md \\
        --at "2026-12-01 09:00" --timezone subscriber
    """
    app = obj.app
    newsletter_id = schedule(app, file, at_text, mode, parse_now(now), again=again)
    info = next(item for item in list_newsletters(app) if item.id == newsletter_id)
    window = app.config.delivery.send_window
    click.echo(
        f"scheduled newsletter {newsletter_id}: {info.subject!r} at {info.when}"
        + (f", to subscribers tagged {info.segment_tag}" if info.segment_tag else "")
    )
    clock = datetime.strptime(info.send_at_local, "%Y-%m-%d %H:%M").time()
    if not window.start <= clock < window.end:
        click.echo(
            f"note: {clock:%H:%M} is outside the send window "
            f"({window.start:%H:%M}-{window.end:%H:%M}) the series uses",
            err=True,
        )
    click.echo(
        "it goes out with the next `nurture send-due` (cron) or `nurture "
        "run` after that time; cancel with: nurture newsletter cancel " + str(newsletter_id)
    )


@newsletter.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def newsletter_list(obj: Context, as_json: bool) -> None:
    """List newsletters: scheduled, sending, sent and cancelled, with counts.

    \b
    Example:
      nurture newsletter list
    """
    rows = list_newsletters(obj.app)
    if as_json:
        data = [
            {
                "id": r.id,
                "status": r.status,
                "subject": r.subject,
                "file": r.source_file,
                "send_at_local": r.send_at_local,
                "timezone": r.timezone_mode,
                "first_due_at": r.first_due_at.isoformat(),
                "segment": r.segment_tag,
                "claimed": r.claimed,
                "sent": r.sent,
                "failed": r.failed,
                "skipped": r.skipped,
            }
            for r in rows
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if rows:
        click.echo(
            f"{'id':>5}  {'status':<10} {'when':<40} {'sent':>6} {'failed':>6} {'pending':>7}  subject"
        )
    for r in rows:
        click.echo(
            f"{r.id:>5}  {r.status:<10} {r.when:<40} {r.sent:>6} {r.failed:>6} {r.claimed:>7}  {r.subject}"
            + (f"  [segment: {r.segment_tag}]" if r.segment_tag else "")
        )
    click.echo(f"{len(rows)} newsletter(s)")


@newsletter.command("cancel")
@click.argument("newsletter_id", metavar="ID", type=int)
@now_option
@pass_context
def newsletter_cancel(obj: Context, newsletter_id: int, now: str | None) -> None:
    """Cancel a newsletter: a scheduled one never goes out, one that is sending stops.

    \b
    Example:
      nurture newsletter cancel 3
    """
    previous = cancel(obj.app, newsletter_id, parse_now(now))
    if previous == "sending":
        sent = next((r.sent for r in list_newsletters(obj.app) if r.id == newsletter_id), 0)
        click.echo(f"cancelled newsletter {newsletter_id}: {sent} already sent; nobody else will get it")
    else:
        click.echo(f"cancelled newsletter {newsletter_id}: it will not be sent")


@newsletter.command("test")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--to", "to_address", required=True, metavar="ADDRESS", help="Where to send the one test copy.")
@pass_context
def newsletter_test(obj: Context, file: Path, to_address: str) -> None:
    """Send one test copy of a newsletter file to yourself, subject marked [TEST].

    Not recorded as a delivery and not counted in stats. With the default outbox
    transport the copy is written as an .eml file in the outbox folder.

    \b
    Example:
      nurture newsletter test campaigns/newsletters/2026-12-winter-note.md --to owner@example.com
    """
    app = obj.app
    result = send_test(app, file, to_address)
    for finding in result.findings:
        click.echo(f"warning: {finding}", err=True)
    click.echo(f"sent {result.subject!r} to {result.to} through the {app.transport.name} transport")
    if result.findings:
        click.echo(
            f"note: {len(result.findings)} problem(s) above would refuse `nurture newsletter schedule`",
            err=True,
        )


def register(cli: click.Group) -> None:
    cli.add_command(newsletter)
