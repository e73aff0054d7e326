"""`nurture owner ...`: the accounts that may open the web console at /console/.

Each command imports nurture.owners.accounts in its body, deferring a heavy import:
importing it hashes a dummy password with argon2 (~150 ms), which no other command
should pay (cron runs send-due every minute).
"""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime

import click

from nurture.cli.base import Context, Group, pass_context
from nurture.errors import InputError
from nurture.owners.audit import Actor, record_now


def _now() -> datetime:
    return datetime.now(UTC)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; the newline a shell's echo or a password manager adds is not part of it.
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InputError(
            "no terminal to ask for the password on: pass it with --password-stdin "
            "(for example: printf '%s' \"$PW\" | nurture owner add ...)"
        )
    return str(
        click.prompt(
            "Password (at least 12 characters)", hide_input=True, confirmation_prompt="Repeat the password"
        )
    )


@click.group(cls=Group)
def owner() -> None:
    """Owner accounts for the web console (/console/ on `nurture serve`).

    The console stays off until the first account exists.

    \b
    Example:
      nurture owner add anna@riverbend.example
      nurture owner totp anna@riverbend.example
    """


@owner.command("add")
@click.argument("email")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of asking."
)
@pass_context
def owner_add(obj: Context, email: str, password_stdin: bool) -> None:
    """Create an owner account (asks for a password of at least 12 characters).

    \b
    Example:
      nurture owner add anna@riverbend.example
    """
    from nurture.owners.accounts import add_owner  # deferred, heavy: see the module docstring

    info = add_owner(obj.app, email, _read_password(password_stdin), _now())
    record_now(obj.app, Actor("(command line)", None), "added an owner account", _now(), f"owner {info.id}")
    url = obj.config.web.public_base_url + "/console/"
    click.echo(f"owner account created: {info.email}. Sign in at {url} (while `nurture serve` runs)")
    if obj.config.console.require_totp:
        click.echo(
            f"console.require_totp is on: set up the code app next with: nurture owner totp {info.email}"
        )


@owner.command("list")
@pass_context
def owner_list(obj: Context) -> None:
    """List the owner accounts and whether each has a code app (TOTP) set up.

    \b
    Example:
      nurture owner list
    """
    from nurture.owners.accounts import list_owners  # deferred, heavy: see the module docstring

    owners = list_owners(obj.app)
    if not owners:
        click.echo("no owner accounts yet: create one with `nurture owner add EMAIL`")
    for info in owners:
        click.echo(
            f"{info.email}  created {info.created_at:%Y-%m-%d}  "
            f"{'with' if info.has_totp else 'without'} a code app"
        )


@owner.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def owner_remove(obj: Context, email: str, yes: bool) -> None:
    """Delete an owner account; its console sessions end at once.

    \b
    Example:
      nurture owner remove former.assistant@riverbend.example --yes
    """
    from nurture.owners.accounts import remove_owner  # deferred, heavy: see the module docstring

    if not yes and not click.confirm(f"Remove the owner account {email}?", default=False):
        click.echo("nothing changed")
        return
    remove_owner(obj.app, email)
    record_now(obj.app, Actor("(command line)", None), "removed an owner account", _now())
    click.echo("owner account removed; its sessions have ended")


@owner.command("reset-password")
@click.argument("email")
@click.option(
    "--password-stdin", is_flag=True, help="Read the new password from standard input instead of asking."
)
@pass_context
def owner_reset_password(obj: Context, email: str, password_stdin: bool) -> None:
    """Set a new password for an owner; every open console session of theirs ends.

    \b
    Example:
      nurture owner reset-password anna@riverbend.example
    """
    from nurture.owners.accounts import reset_password  # deferred, heavy: see the module docstring

    reset_password(obj.app, email, _read_password(password_stdin), _now())
    record_now(obj.app, Actor("(command line)", None), "reset an owner's password", _now())
    click.echo("password changed; sign in again with the new one")


@owner.command("totp")
@click.argument("email")
@pass_context
def owner_totp(obj: Context, email: str) -> None:
    """Set up a code app (TOTP: Google Authenticator, 1Password, ...) as a second factor.

    Prints a QR code to scan and the secret to type instead. From then on the
    console asks for the six-digit code at every sign-in. Running it again
    replaces the old secret.

    \b
    Example:
      nurture owner totp anna@riverbend.example
    """
    import segno  # deferred: only this command draws a QR code

    from nurture.owners.codeapp import enrol_totp  # deferred, heavy: see the module docstring

    secret, uri = enrol_totp(obj.app, email)
    record_now(obj.app, Actor("(command line)", None), "set up a code app for an owner", _now())
    drawing = io.StringIO()
    segno.make(uri, error="m").terminal(out=drawing, compact=True, border=2)
    click.echo("Scan this with the code app on your phone:\n")
    click.echo(drawing.getvalue())
    click.echo(f"Or type this secret into the app: {secret}")
    click.echo("The console now asks for the app's six-digit code at every sign-in.")


@owner.command("reseal")
@pass_context
def owner_reseal(obj: Context) -> None:
    """Encrypt every code app secret again with the current NURTURE_SECRET_KEY.

    Run it after rotating the key (docs/deploy.md): until then the old key must stay in
    NURTURE_PREVIOUS_SECRET_KEYS, since secrets sealed with it need it to open. Each
    owner's secret is also sealed again at her next sign-in.

    \b
    Example:
      nurture owner reseal
    """
    from nurture.owners.codeapp import reseal_all  # deferred, heavy: see the module docstring

    count = reseal_all(obj.app)
    click.echo(f"{count} code app secret(s) sealed again with the current key")


def register(cli: click.Group) -> None:
    cli.add_command(owner)
