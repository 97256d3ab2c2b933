"""The command-line surface: help everywhere, clean refusals of bad input."""

from __future__ import annotations

import subprocess

import click
from click.testing import CliRunner
from conftest import logger_command

from dead_drop_logger.control.cli import cli


def all_commands(group: click.Group) -> list[click.Command]:
    return [group.commands[name] for name in sorted(group.commands)]


def test_every_command_and_option_has_help_text():
    assert cli.help
    for command in all_commands(cli):
        assert command.help, f"{command.name} has no help"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"{command.name} {param.opts} has no help"


def test_bad_poll_interval_is_a_usage_error_not_a_traceback():
    runner = CliRunner()
    for value in ("abc", "-1", "0"):
        result = runner.invoke(cli, ["run", "--poll-interval", value])
        assert result.exit_code == 2, (value, result.output)
        assert result.stderr.startswith(
            "dead-drop-logger: error: invalid value for --poll-interval"
        )
        assert result.stderr.count("\n") == 1


def test_log_dir_through_a_regular_file_is_one_line_and_exit_1(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    result = subprocess.run(
        [
            *logger_command(),
            "run",
            "--db",
            str(tmp_path / "m.db"),
            "--log-dir",
            str(blocker / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("dead-drop-logger: error: cannot create log directory")
