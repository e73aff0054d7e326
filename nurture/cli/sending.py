"""Sending: the pass cron runs, stuck deliveries, the dry look ahead and the daemon."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from datetime import UTC, datetime

import click

from nurture.audience.repermission import daily_review
from nurture.cli.base import Context, Group, now_option, pass_context
from nurture.cli.stopping import stopping_on_signals
from nurture.cli.times import parse_age, parse_now
from nurture.errors import InputError
from nurture.sending.deliveries import count_due, list_stuck, release
from nurture.sending.simulate import dry_run_pass
from nurture.sending.simulate import simulate as run_simulation
from nurture.tick import Tick, run_daemon, tick


@click.command("send-due")
@click.option("--dry-run", is_flag=True, help="Show what this pass would send; send and change nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Claim at most this many emails in this pass.")
@now_option
@pass_context
def send_due_cmd(obj: Context, dry_run: bool, limit: int | None, now: str | None) -> None:
    """One sending pass: plan, claim, render, send, record. Cron runs this every minute.

    Safe to run overlapping: every email is claimed in the database before it is sent.
    Exits 0, or 3 when the provider refuses the API key (or the outbox folder cannot be
    used). SIGTERM or Ctrl-C stops it cleanly: no more claims, the request in flight may
    finish (8 s at most), every claim not handed over is released; exit 143 (SIGTERM) or
    130 (SIGINT). A second signal stops at once.

    \b
    Example (crontab):
      * * * * * cd /srv/nurture && .venv/bin/nurture send-due >> send.log 2>&1
    """
    moment = parse_now(now)
    if dry_run:
        rehearsed = dry_run_pass(obj.app, moment, limit=limit, review=daily_review(obj.app.config))
        for label, count in rehearsed.emails:
            click.echo(f"would send {count:>6}  {label}")
        click.echo(f"dry run: would send {rehearsed.summary.sent}; nothing was sent or changed")
        return
    # A progress bar for a person at a terminal; cron's log gets the summary line alone.
    bar = (
        click.progressbar(
            length=max(1, count_due(obj.app, moment)), label="sending", file=sys.stderr, show_pos=True
        )
        if sys.stderr.isatty()
        else None
    )
    with stopping_on_signals() as stopping, bar if bar is not None else nullcontext():
        done = tick(
            obj.app,
            moment,
            weekly=False,
            limit=limit,
            progress=bar.update if bar is not None else None,
            stop=stopping.stop,
            abandon=stopping.abandon,
        )
    click.echo(done.summary.line())
    if stopping.signum is not None:
        click.echo(stopping.line(), err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # At once: a request abandoned in flight must not hold the exit (its thread is not joined).
        os._exit(stopping.exit_code)
    if done.summary.fatal:
        click.echo(f"error: {done.summary.fatal}", err=True)
        click.echo(
            "stopped: nothing more was claimed; every claim not sent was released for the next run.", err=True
        )
        sys.exit(3)
    for kind in done.notices:
        click.echo(f"{kind} emailed to the owner")


@click.group(cls=Group, invoke_without_command=True)
@click.option(
    "--stuck",
    is_flag=True,
    help="List claims whose outcome is unknown (a crash or no answer from the provider).",
)
@click.option(
    "--older-than", default="10m", show_default=True, help="With --stuck: claimed at least this long ago."
)
@now_option
@click.pass_context
def deliveries(ctx: click.Context, stuck: bool, older_than: str, now: str | None) -> None:
    """Inspect and release deliveries.

    A stuck delivery may or may not have gone out. SendGrid's events settle it by
    themselves (and silence, once the webhook has proved it works, sends it again);
    without the webhook, check SendGrid's activity feed, then release it to send again.

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
    context = ctx.find_object(Context)
    assert context is not None  # `cli` sets ctx.obj before any of its subcommands runs
    rows = list_stuck(context.app, parse_now(now), parse_age(older_than))
    for row in rows:
        click.echo(
            f"{row['id']:>8}  {row['stream']} step {row['step']}  claimed "
            f"{row['claimed_at']:%Y-%m-%d %H:%M} by {row['worker']}  {row['error'] or ''}"
        )
        until = f" until {row['until']:%Y-%m-%d %H:%M} UTC" if row["until"] else ""
        click.echo(f"{'':>8}  waits for {row['waits_for']}{until}")
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
    if not ids and not older_than:
        raise InputError("name delivery ids, or give --older-than (see: nurture deliveries --stuck)")
    count = release(
        obj.app, parse_now(now), ids=ids, older_than=parse_age(older_than) if older_than else None
    )
    click.echo(f"released {count} deliver{'y' if count == 1 else 'ies'}; the next send-due will send them")


@click.command()
@click.option(
    "--days",
    type=click.FloatRange(min=0.01, max=366),
    default=21,
    show_default=True,
    help="How far ahead to look.",
)
@click.option("--detail", is_flag=True, help="List every email, not a summary per day.")
@now_option
@pass_context
def simulate(obj: Context, days: float, detail: bool, now: str | None) -> None:
    """Show who would get which email when over the next days. Sends and changes nothing.

    Each line: the local time it reaches the person (in their own zone), who, and the subject.

    \b
    Example:
      nurture simulate --days 21 --now 2026-12-01T08:00:00Z
    """
    result = run_simulation(obj.app, parse_now(now), days, review=daily_review(obj.app.config))
    if detail or len(result.sends) <= 60:
        for send in result.sends:
            click.echo(f"{send.local:%Y-%m-%d %H:%M} {send.zone}  {send.email}  {send.subject}")
    else:
        click.echo(f"per day in {result.practice_zone}:")
        for day, counts in result.by_day().items():
            click.echo(
                f"{day}  " + "; ".join(f"{subject}: {count}" for subject, count in sorted(counts.items()))
            )
    click.echo(f"{len(result.sends)} email(s) in {days:g} day(s); nothing was sent or changed")


@click.command()
@click.option(
    "--interval", type=click.IntRange(min=5), default=60, show_default=True, help="Seconds between passes."
)
@pass_context
def run(obj: Context, interval: int) -> None:
    """Run the sending pass every minute until stopped (SIGTERM or Ctrl-C).

    Picks up scheduled newsletters too. Stops cleanly: the current pass finishes,
    and claims it could not send are released.

    \b
    Example (systemd ExecStart):
      /srv/nurture/.venv/bin/nurture run
    """

    def report(done: Tick) -> None:
        summary = done.summary
        if summary.sent or summary.failed or summary.skipped or summary.fatal:
            click.echo(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {summary.line()}")
        if summary.fatal:
            click.echo(f"error: {summary.fatal}", err=True)
        for kind in done.notices:
            click.echo(f"{kind} emailed to the owner")

    click.echo(
        f"nurture run: a pass every {interval}s with the {obj.app.transport.name} transport; Ctrl-C to stop"
    )
    code = run_daemon(obj.app, interval_seconds=interval, report=report)
    click.echo("stopped")
    sys.exit(code)


def register(cli: click.Group) -> None:
    cli.add_command(send_due_cmd)
    cli.add_command(deliveries)
    cli.add_command(simulate)
    cli.add_command(run)
