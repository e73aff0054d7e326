"""`nurture db`: the store's schema."""

from __future__ import annotations

import click
from sqlalchemy import Engine

from nurture.cli.base import Context, Group, pass_context
from nurture.store.migrate import current_revision


@click.group(cls=Group)
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
    app = obj.app
    assert isinstance(
        app.engine, Engine
    )  # App.open always makes an Engine; only App.rehearsal holds a Connection
    click.echo(f"schema is at revision {current_revision(app.engine)}")


def register(cli: click.Group) -> None:
    cli.add_command(db)
