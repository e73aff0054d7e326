"""The owner's commands: newsletters, starting and pausing a series, stats and the report."""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path

import click

from nurture.cli.base import Context, Group, now_option, parse_now, pass_context
from nurture.config import Config
from nurture.errors import InputError


def parse_practice_time(config: Config, value: str, option: str) -> datetime:
    """'YYYY-MM-DD HH:MM' or 'YYYY-MM-DD' in the practice's zone, or ISO 8601 with an offset."""
    from nurture.sending.planning import at_local, zone

    text = value.strip()
    tz = zone(config.delivery.default_timezone)
    for pattern in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            local = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return at_local(local.date(), local.time() if pattern != "%Y-%m-%d" else time(0, 0), tz)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{option} {value!r}: write YYYY-MM-DD or YYYY-MM-DD HH:MM (read in {config.delivery.default_timezone})"
        ) from None
    if when.tzinfo is None:
        return at_local(when.date(), when.time(), tz)
    return when


# ---------------------------------------------------------------- newsletters


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
@click.option("--at", "at_text", required=True, metavar='"YYYY-MM-DD HH:MM"', help="Local date and time to send.")
@click.option(
    "--timezone",
    "mode",
    type=click.Choice(["practice", "subscriber"]),
    default="practice",
    show_default=True,
    help="practice: one instant, --at in the practice's zone; subscriber: --at in each subscriber's own zone.",
)
@click.option("--again", is_flag=True, help="Schedule it even though a newsletter with the same content is already scheduled or sent.")
@now_option
@pass_context
def newsletter_schedule(obj: Context, file: Path, at_text: str, mode: str, again: bool, now: str | None) -> None:
    """Check a newsletter and schedule it. Any `nurture check` problem refuses it.

    What is scheduled is the file as it is now: later edits do not change it
    (cancel and schedule again to send a new version). A file whose content is
    already scheduled or sent is refused, naming that newsletter, unless --again.

    \b
    Example:
      nurture newsletter schedule campaigns/newsletters/2026-12-winter-note.md --at "2026-12-01 09:00" --timezone subscriber
    """
    from nurture.newsletters import list_newsletters, schedule

    app = obj.app
    newsletter_id = schedule(app, file, at_text, mode, parse_now(now), again=again)
    info = next(item for item in list_newsletters(app) if item.id == newsletter_id)
    window = app.config.delivery.send_window
    click.echo(f"scheduled newsletter {newsletter_id}: {info.subject!r} at {info.when}" + (f", to subscribers tagged {info.segment_tag}" if info.segment_tag else ""))
    clock = datetime.strptime(info.send_at_local, "%Y-%m-%d %H:%M").time()
    if not window.start <= clock < window.end:
        click.echo(f"note: {clock:%H:%M} is outside the send window ({window.start:%H:%M}-{window.end:%H:%M}) the series uses", err=True)
    click.echo("it goes out with the next `nurture send-due` (cron) or `nurture run` after that time; cancel with: nurture newsletter cancel " + str(newsletter_id))


@newsletter.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def newsletter_list(obj: Context, as_json: bool) -> None:
    """List newsletters: scheduled, sending, sent and cancelled, with counts.

    \b
    Example:
      nurture newsletter list
    """
    from nurture.newsletters import list_newsletters

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
        click.echo(f"{'id':>5}  {'status':<10} {'when':<40} {'sent':>6} {'failed':>6} {'pending':>7}  subject")
    for r in rows:
        click.echo(f"{r.id:>5}  {r.status:<10} {r.when:<40} {r.sent:>6} {r.failed:>6} {r.claimed:>7}  {r.subject}" + (f"  [segment: {r.segment_tag}]" if r.segment_tag else ""))
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
    from nurture.newsletters import cancel, list_newsletters

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
    from nurture.newsletters import send_test

    app = obj.app
    result = send_test(app, file, to_address)
    for finding in result.findings:
        click.echo(f"warning: {finding}", err=True)
    click.echo(f"sent {result.subject!r} to {result.to} through the {app.transport.name} transport")
    if result.findings:
        click.echo(f"note: {len(result.findings)} problem(s) above would refuse `nurture newsletter schedule`", err=True)


# ---------------------------------------------------------------- campaigns


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
@click.option("--at", "at_text", metavar='"YYYY-MM-DD HH:MM"', help="When the series starts, in the practice's zone (default: now).")
@click.option("--tag", "tag_name", metavar="TAG", help="Only subscribers with this tag.")
@now_option
@pass_context
def campaign_start(obj: Context, name: str, at_text: str | None, tag_name: str | None, now: str | None) -> None:
    """Enroll the active subscribers (or those with --tag) in a series from a moment on.

    Each email still goes out inside each person's own send window. People already
    in the series keep their place; people with one of its stop_on_tags are left out.

    \b
    Example:
      nurture campaign start kap-intro --at "2026-12-01 09:00" --tag open-day
    """
    from nurture.sending.control import start

    app = obj.app
    moment = parse_now(now)
    at = parse_practice_time(app.config, at_text, "--at") if at_text else None
    result = start(app, name, now=moment, at=at, tag=tag_name)
    zone_name = app.config.delivery.default_timezone
    from nurture.sending.planning import zone

    click.echo(
        f"{result.campaign}: {result.enrolled} subscriber(s) enrolled from {result.start.astimezone(zone(zone_name)):%Y-%m-%d %H:%M} ({zone_name}); "
        f"{result.unchanged} already in it or excluded by a stop tag"
    )
    if result.paused:
        click.echo(f"note: {result.campaign} is paused; nothing goes out until: nurture campaign resume {result.campaign}", err=True)


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
    from nurture.sending.control import pause

    changed = pause(obj.app, name, parse_now(now))
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
    from nurture.sending.control import resume

    changed = resume(obj.app, name, parse_now(now))
    click.echo(f"{name}: resumed" if changed else f"{name} was not paused: nothing changed")


# ---------------------------------------------------------------- stats and report


@click.command()
@click.option("--campaign", "campaign_name", metavar="CAMPAIGN", help="Only this series' emails.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only emails sent from this day on (practice time zone).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def stats(obj: Context, campaign_name: str | None, since: str | None, as_json: bool) -> None:
    """How each email did: sent, delivered, opened, clicked, bounced, complaints, unsubscribed.

    Counts of sent emails, with each as a share of sent. Opens are approximate
    (some mail apps open every email, others block tracking).

    \b
    Example:
      nurture stats --campaign kap-intro --since 2026-12-01
    """
    from nurture.reporting.stats import COUNTS, RATES, step_stats

    app = obj.app
    since_at = parse_practice_time(app.config, since, "--since") if since else None
    rows = step_stats(app, campaign=campaign_name, since=since_at)
    if as_json:
        data = [
            {
                "kind": r.kind,
                "stream": r.stream,
                "step": r.step,
                "subject": r.subject,
                **r.counts,
                **{f"{name}_rate": round(r.rate(name), 4) for name in RATES},
            }
            for r in rows
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    headers = ["email", *COUNTS]
    table = []
    for r in rows:
        cells = [f"{r.label}  {r.subject[:34]}", str(r.sent)]
        for name in RATES:
            value = getattr(r, name)
            cells.append(f"{value} ({r.rate(name) * 100:.1f}%)" if r.sent else str(value))
        table.append(cells)
    widths = [max(len(headers[i]), *(len(row[i]) for row in table)) if table else len(headers[i]) for i in range(len(headers))]
    click.echo("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(headers)))
    for row in table:
        click.echo("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
    click.echo(f"{sum(r.sent for r in rows)} email(s) sent" + (f" since {since}" if since else ""))


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True, help="The HTML file to write.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only emails sent from this day on (practice time zone).")
@now_option
@pass_context
def report(obj: Context, out: Path, since: str | None, now: str | None) -> None:
    """Write the report: one self-contained HTML page with charts.

    Shows the series funnel, sends per day, unsubscribe and bounce rates per
    email, newsletter results and every number. Open it in any browser, offline.

    \b
    Example:
      nurture report --out report.html
    """
    from nurture.reporting.report import write_report

    app = obj.app
    since_at = parse_practice_time(app.config, since, "--since") if since else None
    path = write_report(app, out, since_at, now=parse_now(now))
    click.echo(f"report written: open {path.resolve()}")


def register(cli: click.Group) -> None:
    cli.add_command(newsletter)
    cli.add_command(campaign)
    cli.add_command(stats)
    cli.add_command(report)
