"""Every command's --help says what it does and shows at least one example of its use."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from dead_drop_logger.cli import cli

COMMANDS = sorted(cli.commands)


def test_the_reading_commands_are_there() -> None:
    assert {"search", "thread", "agents"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_text_and_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0
    command = cli.commands[name]
    assert isinstance(command, click.Command) and (command.help or "").strip()
    assert "Examples:\n" in result.output
    example = result.output.split("Examples:\n", 1)[1].splitlines()[0]
    assert example.strip().startswith(f"dead-drop-logger {name}"), example
