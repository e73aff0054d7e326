"""`nurture stats` and `nurture report`: how the emails did."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nurture.cli.base import Context, now_option, pass_context
from nurture.cli.times import parse_now, parse_practice_time
from nurture.reporting.email_counts import COUNTS
from nurture.reporting.report import write_report
from nurture.reporting.stats import RATES, TRACKING_NOTES, step_stats


@click.command()
@click.option("--campaign", "campaign_name", metavar="CAMPAIGN", help="Only this series' emails.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only emails sent from this day on (practice time zone).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def stats(obj: Context, campaign_name: str | None, since: str | None, as_json: bool) -> None:
    """How each email did: sent, delivered, opened, clicked, bounced, complaints, unsubscribed.

    Counts of sent emails, with each as a share of sent. Opens and clicks follow
    delivery.tracking: "not tracked" when off, totals per email when aggregate.
    Opens are approximate (some mail apps open every email, others block tracking).

    \b
    Example:
      nurture stats --campaign kap-intro --since 2026-12-01
    """
    app = obj.app
    since_at = parse_practice_time(since, "--since", app.config.delivery.default_timezone) if since else None
    rows = step_stats(app, campaign=campaign_name, since=since_at)
    if as_json:
        data = [
            {
                "kind": r.kind,
                "stream": r.stream,
                "step": r.step,
                "subject": r.subject,
                **r.counts,
                **{f"{name}_rate": round(r.rate(name), 4) if r.has_rate(name) else None for name in RATES},
                "tracking": r.tracking,
            }
            for r in rows
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    headers = ["email", *COUNTS]
    table = []
    for r in rows:
        cells = [f"{r.label}  {r.subject[:34]}", str(r.sent)]
        cells += [r.shown(name) for name in RATES]
        table.append(cells)
    widths = [
        max(len(headers[i]), *(len(row[i]) for row in table)) if table else len(headers[i])
        for i in range(len(headers))
    ]
    click.echo("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(headers)))
    for row in table:
        click.echo("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
    click.echo(TRACKING_NOTES[app.config.delivery.tracking])
    click.echo(f"{sum(r.sent for r in rows)} email(s) sent" + (f" since {since}" if since else ""))


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
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
    app = obj.app
    since_at = parse_practice_time(since, "--since", app.config.delivery.default_timezone) if since else None
    path = write_report(app, out, since_at, now=parse_now(now))
    click.echo(f"report written: open {path.resolve()}")


def register(cli: click.Group) -> None:
    cli.add_command(stats)
    cli.add_command(report)
