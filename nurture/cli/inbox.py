"""Staying in the inbox: `nurture doctor` (DNS, https, one-click, webhook) and the sending
holds placed by alerts (`nurture holds`, `nurture holds lift`)."""

from __future__ import annotations

import click

from nurture.cli.base import Context, Group, now_option, pass_context
from nurture.cli.times import parse_now
from nurture.deliverability import DEFAULT_TIMEOUT
from nurture.sending.holds import lift, read_holds


@click.command()
@click.option(
    "--nameserver",
    "nameservers",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Ask this DNS server (repeatable); default: the machine's own.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=60),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds allowed for each DNS look-up or web request.",
)
@click.option("--ca-file", metavar="FILE", help="Trust this CA file for https (a private test server).")
@now_option
@pass_context
def doctor(
    obj: Context, nameservers: tuple[str, ...], timeout: float, ca_file: str | None, now: str | None
) -> None:
    """Check what decides whether the practice's mail reaches inboxes.

    SPF names the provider, DKIM keys are published, DMARC has a policy and is aligned
    with the From domain, the Return-Path domain exists, replies can be delivered;
    web.public_base_url answers over https and the one-click unsubscribe works end to
    end (on a test copy's link: nobody is unsubscribed); the provider's webhook has
    reported in the last 24 hours while emails went out. Each finding says what to
    publish. Changes nothing. Exits 1 when something must be fixed.

    \b
    Example:
      nurture doctor
      nurture doctor --nameserver 1.1.1.1 --timeout 3
    """
    # Deferred, heavy (dnspython): every other command, cron's send-due among them, starts without it.
    from nurture.deliverability.doctor import DoctorOptions, run_doctor

    options = DoctorOptions(nameservers=nameservers, timeout=timeout, ca_file=ca_file)
    report = run_doctor(obj.app, parse_now(now), options)
    click.echo(report.render())
    if report.exit_code:
        raise SystemExit(report.exit_code)


@click.group(cls=Group, invoke_without_command=True)
@click.pass_context
def holds(ctx: click.Context) -> None:
    """Sending held back by an alert: list them, or lift one once you have looked into it.

    Spam complaints past 0.3% in 7 days hold newsletters; bounces past 5% hold all
    sending. Nothing a hold covers goes out until it is lifted (here, or with the
    button on the console's Today page).

    \b
    Example:
      nurture holds
      nurture holds lift 3
    """
    if ctx.invoked_subcommand is not None:
        return
    context = ctx.find_object(Context)
    assert context is not None  # `cli` sets ctx.obj before any of its subcommands runs
    found = read_holds(context.app.engine)
    for hold in found:
        click.echo(f"{hold.id:>4}  {hold.what} held since {hold.placed_at:%Y-%m-%d %H:%M} UTC: {hold.reason}")
    click.echo(f"{len(found)} hold(s) in place" if found else "no hold: sending goes on as planned")


@holds.command("lift")
@click.argument("hold_id", type=int)
@now_option
@pass_context
def holds_lift(obj: Context, hold_id: int, now: str | None) -> None:
    """Lift a hold: what it held goes out again from the next pass.

    \b
    Example:
      nurture holds lift 3
    """
    lifted = lift(obj.app.engine, hold_id, parse_now(now), "command line")
    click.echo(f"lifted hold {lifted.id}: {lifted.what} go on from the next pass")


def register(cli: click.Group) -> None:
    cli.add_command(doctor)
    cli.add_command(holds)
