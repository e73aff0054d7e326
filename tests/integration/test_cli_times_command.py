"""A time the CLI cannot read, given to a command on a real project: one line, no traceback."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from nurture.cli.main import cli
from tests.support.factories import SECRET, make_app


def test_the_command_prints_the_mistake_without_a_traceback(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    result = CliRunner().invoke(
        cli, ["--config", str(app.config.path), "stats", "--since", "9am"], env={"NURTURE_SECRET_KEY": SECRET}
    )
    zone = app.config.delivery.default_timezone
    assert result.exit_code == 1
    assert (
        result.output == f"error: --since '9am': use YYYY-MM-DD HH:MM or YYYY-MM-DD (read in {zone}), "
        "for example 2026-12-08 10:00\n"
    )
