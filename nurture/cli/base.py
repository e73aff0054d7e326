"""What every command shares: the Context (config and app, opened lazily), the error-handling
group and the --now option (read by nurture.cli.times.parse_now)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError

from nurture.app import App
from nurture.config import Config, load_config
from nurture.errors import NurtureError

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self._app: App | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App.open(self.config)
            for problem in self._app.settings_problems:
                # A setting saved in the console that no longer validates: sending goes on with the file's.
                click.echo(f"warning: {problem.brief()}", err=True)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


class Group(click.Group):
    """Turns NurtureError and database connection failures into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NurtureError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OperationalError as exc:
            click.echo(
                f"error: the database could not be used: {exc.orig}. "
                "Check database.url and that the server is running.",
                err=True,
            )
            ctx.exit(2)


def now_option(func: F) -> F:
    return click.option(
        "--now",
        "now",
        metavar="ISO8601",
        default=None,
        help="Pretend the time is this (for tests and demos); default: the real time.",
    )(func)


pass_context = click.make_pass_decorator(Context)
