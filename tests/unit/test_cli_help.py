"""Every command and subcommand has --help with an example, and --help never crashes.

Commands are discovered by walking the click tree, so commands other modules
register are checked too.
"""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from nurture.cli.main import cli


def walk(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found.extend(walk(command.commands[name], path + (name,)))
    return found


COMMANDS = walk(cli)
HEADING = re.compile(r"^(\s*)Examples?\b[^\n]*:\s*$")


def label(path: tuple[str, ...]) -> str:
    return " ".join(("nurture",) + path)


def example_lines(help_text: str) -> list[str]:
    """The non-blank lines under each 'Example...:' heading, up to the next blank line."""
    lines = help_text.splitlines()
    found: list[str] = []
    for index, line in enumerate(lines):
        if HEADING.match(line):
            for following in lines[index + 1 :]:
                if not following.strip():
                    break
                found.append(following.strip())
    return found


def test_the_walk_finds_the_known_commands():
    names = {label(path) for path, _ in COMMANDS}
    for expected in (
        "nurture",
        "nurture db upgrade",
        "nurture subscribe",
        "nurture confirm",
        "nurture import",
        "nurture unsubscribe",
        "nurture subscribers list",
        "nurture subscribers show",
        "nurture subscribers export",
        "nurture subscribers forget",
        "nurture send-due",
        "nurture deliveries release",
    ):
        assert expected in names


def test_example_lines_parser():
    text = "Do a thing.\n\n  Example (cron):\n    nurture thing --x\n    nurture thing --y\n\n  Options:\n"
    assert example_lines(text) == ["nurture thing --x", "nurture thing --y"]
    assert example_lines("No example here.\n  nurture thing\n") == []


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=label)
def test_help_runs_and_shows_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="nurture", catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {label(path)}"), result.output
    # The heading must stand on its own line: a docstring without \b before it gets
    # rewrapped by click into one paragraph, and then this finds nothing.
    examples = example_lines(result.output)
    assert examples, (
        f"`{label(path)} --help` has no 'Example:' block (\\b on the line before it):\n{result.output}"
    )
    # The example shows this very command being run.
    word = path[-1] if path else "nurture"
    assert any("nurture" in line and word in line for line in examples), (
        f"the example in `{label(path)} --help` does not show `{word}`:\n" + "\n".join(examples)
    )


def test_every_command_has_help_text():
    missing = [label(path) for path, command in COMMANDS if not (command.help or "").strip()]
    assert missing == []
