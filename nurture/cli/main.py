"""The `nurture` command: a thin shell over the Python API.

Every command's help ends with an example (a test fails when one lacks it).
User mistakes print one clear line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click
from sqlalchemy.exc import OperationalError

from nurture.cli import content as cli_content
from nurture.cli import owner as cli_owner
from nurture.cli import web as cli_web
from nurture.cli.base import Context, Group, now_option, parse_now, pass_context
from nurture.errors import InputError
from nurture.store.models import SubscriberStatus

if TYPE_CHECKING:
    from datetime import timedelta

    from nurture.sending.sendpass import PassSummary

@click.group(cls=Group)
@click.option("--config", "config_path", metavar="FILE", envvar="NURTURE_CONFIG", help="Config file (default: ./config.yaml).")
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


# ---------------------------------------------------------------- db


@cli.group(cls=Group)
def db() -> None:
    """The store's schema.

    \b
    Example:
      nurture db upgrade
    """


@db.command("upgrade")
@pass_context
def db_upgrade(obj: Context) -> None:
    """Apply database migrations (other commands do this on their own too).

    \b
    Example:
      NURTURE_DATABASE_URL=postgresql+psycopg://nurture@localhost/nurture nurture db upgrade
    """
    from sqlalchemy import Engine

    from nurture.store.migrate import current_revision

    app = obj.app
    assert isinstance(app.engine, Engine)  # App.open always makes an Engine; only App.rehearsal holds a Connection
    click.echo(f"schema is at revision {current_revision(app.engine)}")


# ---------------------------------------------------------------- subscribers


@cli.command()
@click.argument("email")
@click.option("--first-name", help="Used in the greeting.")
@click.option("--timezone", "zone", metavar="Area/City", help="IANA time zone for the send window (default: delivery.default_timezone).")
@click.option("--source", default="cli", show_default=True, help="Where the opt-in came from, for the consent record.")
@now_option
@pass_context
def subscribe(obj: Context, email: str, first_name: str | None, zone: str | None, source: str, now: str | None) -> None:
    """Add someone as pending and send the double-opt-in confirmation email.

    Nothing else is sent until they confirm.

    \b
    Example:
      nurture subscribe sam@example.com --first-name Sam --timezone America/Chicago
    """
    from nurture.audience.subscribers import subscribe as do_subscribe

    result = do_subscribe(obj.app, email, parse_now(now), first_name=first_name, timezone=zone, source=source)
    if result.status == "already_active":
        click.echo("already subscribed and confirmed: nothing changed")
    else:
        click.echo(f"pending: confirmation email sent through the {obj.app.transport.name} transport")


@cli.command()
@click.argument("token")
@now_option
@pass_context
def confirm(obj: Context, token: str, now: str | None) -> None:
    """Confirm a subscription with the token from its confirmation email.

    \b
    Example:
      nurture confirm eyJ...Q.2vS1...
    """
    from nurture.audience.subscribers import confirm as do_confirm

    result = do_confirm(obj.app, token, parse_now(now))
    if result.status == "already_active":
        click.echo("already confirmed: nothing changed")
    else:
        click.echo(f"confirmed; enrolled in {result.enrolled} campaign(s)")


@cli.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the good rows and report the bad ones (default: import nothing if any row is bad).")
@click.option("--no-enroll", is_flag=True, help="Add people without starting any series for them.")
@now_option
@pass_context
def import_(obj: Context, csv_file: Path, skip_invalid: bool, no_enroll: bool, now: str | None) -> None:
    """Import people who consented elsewhere, from a CSV file.

    Columns: email, first_name, timezone, consented_at, consent_source.
    Rows without consent evidence are refused. Erased addresses are never re-imported,
    and nobody who unsubscribed is brought back.

    \b
    Example:
      nurture import open-day-signups.csv --skip-invalid
    """
    from nurture.audience.importer import import_csv

    app = obj.app
    total = 0
    if sys.stderr.isatty() and csv_file.is_file():
        with csv_file.open(encoding="utf-8", errors="replace") as handle:
            total = sum(1 for _ in handle) - 1
    if total > 1000:
        with click.progressbar(length=max(total, 1), label="importing", file=sys.stderr) as bar:
            report = import_csv(app, csv_file, parse_now(now), skip_invalid=skip_invalid, enroll_subscribers=not no_enroll, progress=bar.update)
    else:
        report = import_csv(app, csv_file, parse_now(now), skip_invalid=skip_invalid, enroll_subscribers=not no_enroll)
    for problem in report.invalid:
        click.echo(f"skipped {csv_file}, {problem}", err=True)
    if report.invalid_count > len(report.invalid):
        click.echo(f"skipped {csv_file}: {report.invalid_count - len(report.invalid)} more problem(s) not listed", err=True)
    click.echo(
        f"{report.rows} rows: {report.created} added, {report.activated} activated, {report.merged} merged, "
        f"{report.invalid_count} invalid, {report.skipped_erased} erased (refused), "
        f"{report.skipped_unsubscribed} unsubscribed (left alone); {report.enrolled} enrolled"
    )


@cli.command()
@click.argument("email")
@click.option("--reason", help="Noted in the consent record.")
@now_option
@pass_context
def unsubscribe(obj: Context, email: str, reason: str | None, now: str | None) -> None:
    """Stop all marketing email to an address (recorded in the consent history).

    \b
    Example:
      nurture unsubscribe sam@example.com --reason "asked by phone"
    """
    from nurture.audience.subscribers import unsubscribe_email

    changed = unsubscribe_email(obj.app, email, parse_now(now), reason=reason)
    click.echo("unsubscribed" if changed else "already unsubscribed: nothing changed")


@cli.group(cls=Group)
def subscribers() -> None:
    """List, inspect, export, tag and forget subscribers.

    \b
    Example:
      nurture subscribers list --status active
    """


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


@subscribers.command("list")
@click.option("--status", type=click.Choice([status.value for status in SubscriberStatus]))
@click.option("--tag", "tag_name", help="Only subscribers with this tag.")
@click.option("--limit", type=int, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def subscribers_list(obj: Context, status: str | None, tag_name: str | None, limit: int | None, as_json: bool) -> None:
    """List subscribers.

    \b
    Example:
      nurture subscribers list --status pending --limit 20
    """
    from nurture.audience.subscribers import list_subscribers

    rows = list_subscribers(obj.app, status=status, tag_name=tag_name, limit=limit)
    if as_json:
        click.echo(_json(rows))
        return
    for row in rows:
        click.echo(f"{row['id']:>7}  {row['status']:<12} {row['email']:<40} {row['timezone'] or '-':<22} {row['first_name'] or ''}")
    click.echo(f"{len(rows)} subscriber(s)")


@subscribers.command("show")
@click.argument("email")
@pass_context
def subscribers_show(obj: Context, email: str) -> None:
    """Show one subscriber: status, tags, consent history, series progress.

    \b
    Example:
      nurture subscribers show sam@example.com
    """
    from nurture.audience.subscribers import export

    data = export(obj.app, email)
    person = data["subscriber"]
    click.echo(f"{person['email']}  status={person['status']}  timezone={person['timezone'] or '(default)'}  tags={','.join(data['tags']) or '-'}")
    click.echo("consent history:")
    for event in data["consent_events"]:
        click.echo(f"  {event['occurred_at']}  {event['kind']:<12} {event['source'] or ''} {event['detail'] or ''}".rstrip())
    click.echo("series:")
    for row in data["enrollments"]:
        click.echo(f"  {row['campaign']}: {row['status']}, next step {row['next_step']} due {row['next_due_at']}")
    click.echo(f"emails: {len(data['deliveries'])} recorded")


@subscribers.command("export")
@click.argument("email")
@pass_context
def subscribers_export(obj: Context, email: str) -> None:
    """Print everything held about one person as JSON (for a data request).

    \b
    Example:
      nurture subscribers export sam@example.com > sam.json
    """
    from nurture.audience.subscribers import export

    click.echo(_json(export(obj.app, email)))


@subscribers.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@now_option
@pass_context
def subscribers_forget(obj: Context, email: str, yes: bool, now: str | None) -> None:
    """Erase a person and their data; keep only a keyed hash so they stay suppressed.

    \b
    Example:
      nurture subscribers forget sam@example.com --yes
    """
    from nurture.audience.subscribers import forget

    if not yes and not click.confirm("Erase this person and all their records? This cannot be undone", err=True):
        raise InputError("not erased")
    forget(obj.app, email, parse_now(now))
    click.echo("erased; the address stays suppressed as a keyed hash")


@subscribers.command("tag")
@click.argument("email")
@click.argument("tag_name", metavar="TAG")
@now_option
@pass_context
def subscribers_tag(obj: Context, email: str, tag_name: str, now: str | None) -> None:
    """Tag a subscriber. A tag listed in a campaign's stop_on_tags ends that series for them.

    \b
    Example:
      nurture subscribers tag sam@example.com booked
    """
    from nurture.audience.subscribers import tag

    stopped = tag(obj.app, email, tag_name, parse_now(now))
    click.echo("tagged" + (f"; series ended: {', '.join(stopped)}" if stopped else ""))


@subscribers.command("untag")
@click.argument("email")
@click.argument("tag_name", metavar="TAG")
@pass_context
def subscribers_untag(obj: Context, email: str, tag_name: str) -> None:
    """Remove a tag from a subscriber.

    \b
    Example:
      nurture subscribers untag sam@example.com booked
    """
    from nurture.audience.subscribers import untag

    click.echo("untagged" if untag(obj.app, email, tag_name) else "did not have that tag: nothing changed")


# ---------------------------------------------------------------- sending


def _parse_age(value: str) -> "timedelta":
    from datetime import timedelta

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise InputError(f"--older-than {value!r}: use a number and a unit, like 30m, 2h or 1d")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


@cli.command("send-due")
@click.option("--dry-run", is_flag=True, help="Show what this pass would send; send and change nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Claim at most this many emails in this pass.")
@now_option
@pass_context
def send_due_cmd(obj: Context, dry_run: bool, limit: int | None, now: str | None) -> None:
    """One sending pass: plan, claim, render, send, record. Cron runs this every minute.

    Safe to run overlapping: every email is claimed in the database before it is sent.
    Exits 0, or 3 when the provider refuses the API key.

    \b
    Example (crontab):
      * * * * * cd /srv/nurture && .venv/bin/nurture send-due >> send.log 2>&1
    """
    from nurture.sending.sendpass import SendingPass
    from nurture.providers.recording import RecordingTransport

    app = obj.app
    moment = parse_now(now)
    if dry_run:
        transport = RecordingTransport()
        with app.rehearsal(transport) as rehearsal:
            summary = SendingPass(rehearsal, moment, limit=limit, worker="dry-run").run()
        counts: dict[str, int] = {}
        for record in transport.sent:
            label = f"{record.stream} step {record.step}: {record.subject}"
            counts[label] = counts.get(label, 0) + 1
        for label, count in sorted(counts.items()):
            click.echo(f"would send {count:>6}  {label}")
        click.echo(f"dry run: would send {summary.sent}; nothing was sent or changed")
        return
    if sys.stderr.isatty():
        from nurture.sending.sendpass import count_due

        with click.progressbar(length=max(1, count_due(app, moment)), label="sending", file=sys.stderr, show_pos=True) as bar:
            summary = SendingPass(app, moment, limit=limit, progress=bar.update).run()
    else:
        summary = SendingPass(app, moment, limit=limit).run()
    click.echo(summary.line())
    if summary.fatal:
        click.echo(f"error: {summary.fatal}", err=True)
        click.echo("stopped: nothing more was claimed; every claim not sent was released for the next run.", err=True)
        sys.exit(3)


@cli.group(cls=Group, invoke_without_command=True)
@click.option("--stuck", is_flag=True, help="List claims whose outcome is unknown (a crash or no answer from the provider).")
@click.option("--older-than", default="10m", show_default=True, help="With --stuck: claimed at least this long ago.")
@now_option
@click.pass_context
def deliveries(ctx: click.Context, stuck: bool, older_than: str, now: str | None) -> None:
    """Inspect and release deliveries.

    A stuck delivery may or may not have gone out, so it is never resent by itself.
    Check (for example in SendGrid's activity feed), then release it to send again.

    \b
    Example:
      nurture deliveries --stuck
      nurture deliveries release 1042
    """
    if ctx.invoked_subcommand is not None:
        return
    if not stuck:
        click.echo(ctx.get_help())
        return
    from nurture.sending.sendpass import list_stuck

    context = ctx.find_object(Context)
    assert context is not None  # `cli` sets ctx.obj before any of its subcommands runs
    rows = list_stuck(context.app, parse_now(now), _parse_age(older_than))
    for row in rows:
        click.echo(f"{row['id']:>8}  {row['stream']} step {row['step']}  claimed {row['claimed_at']:%Y-%m-%d %H:%M} by {row['worker']}  {row['error'] or ''}")
    click.echo(f"{len(rows)} stuck deliver{'y' if len(rows) == 1 else 'ies'}")


@deliveries.command("release")
@click.argument("ids", nargs=-1, type=int)
@click.option("--older-than", help="Release every stuck delivery claimed at least this long ago (e.g. 2h).")
@now_option
@pass_context
def deliveries_release(obj: Context, ids: tuple[int, ...], older_than: str | None, now: str | None) -> None:
    """Give stuck or failed deliveries back so the next pass sends them again.

    Only do this once you know they did not go out: a released email is sent again.

    \b
    Example:
      nurture deliveries release 1042 1043
      nurture deliveries release --older-than 2h
    """
    from nurture.sending.sendpass import release

    if not ids and not older_than:
        raise InputError("name delivery ids, or give --older-than (see: nurture deliveries --stuck)")
    count = release(obj.app, parse_now(now), ids=ids, older_than=_parse_age(older_than) if older_than else None)
    click.echo(f"released {count} deliver{'y' if count == 1 else 'ies'}; the next send-due will send them")


@cli.command()
@click.option("--days", type=click.FloatRange(min=0.01, max=366), default=21, show_default=True, help="How far ahead to look.")
@click.option("--detail", is_flag=True, help="List every email, not a summary per day.")
@now_option
@pass_context
def simulate(obj: Context, days: float, detail: bool, now: str | None) -> None:
    """Show who would get which email when over the next days. Sends and changes nothing.

    \b
    Example:
      nurture simulate --days 21 --now 2026-12-01T08:00:00Z
    """
    from nurture.sending.simulate import simulate as run_simulation

    result = run_simulation(obj.app, parse_now(now), days)
    if detail or len(result.sends) <= 60:
        for send in result.sends:
            click.echo(f"{send.at:%Y-%m-%d %H:%M}Z  {send.stream} step {send.step}  {send.email}")
    else:
        for day, counts in result.by_day().items():
            click.echo(f"{day}  " + ", ".join(f"{label}: {count}" for label, count in sorted(counts.items())))
    click.echo(f"{len(result.sends)} email(s) in {days:g} day(s); nothing was sent or changed")


@cli.command()
@click.option("--interval", type=click.IntRange(min=5), default=60, show_default=True, help="Seconds between passes.")
@pass_context
def run(obj: Context, interval: int) -> None:
    """Run the sending pass every minute until stopped (SIGTERM or Ctrl-C).

    Picks up scheduled newsletters too. Stops cleanly: the current pass finishes,
    and claims it could not send are released.

    \b
    Example (systemd ExecStart):
      /srv/nurture/.venv/bin/nurture run
    """
    from nurture.sending.daemon import run_daemon

    def report(summary: "PassSummary") -> None:
        if summary.sent or summary.failed or summary.skipped or summary.fatal:
            click.echo(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S}Z {summary.line()}")
        if summary.fatal:
            click.echo(f"error: {summary.fatal}", err=True)

    click.echo(f"nurture run: a pass every {interval}s with the {obj.app.transport.name} transport; Ctrl-C to stop")
    code = run_daemon(obj.app, interval_seconds=interval, report=report)
    click.echo("stopped")
    sys.exit(code)



cli_content.register(cli)
cli_web.register(cli)
cli_owner.register(cli)


def main() -> None:
    cli(prog_name="nurture")


if __name__ == "__main__":
    main()
