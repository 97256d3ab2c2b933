"""The command-line surface: help everywhere, clean refusals of bad input."""

from __future__ import annotations

import os
import subprocess

import click
from click.testing import CliRunner
from conftest import logger_command

from dead_drop_logger.control.cli import cli
from dead_drop_logger.control.lazygroup import LazyGroup


def all_commands(group: LazyGroup) -> list[click.Command]:
    return [command for _, command in sorted(group.every_command().items())]


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


def complete(words: str) -> list[str]:
    """What bash completion offers for the last of ``words``, as the real process says."""
    done = subprocess.run(
        logger_command(),
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "_DEAD_DROP_LOGGER_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        },
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_shell_completion_finds_commands_options_and_subcommands():
    """The commands are loaded when asked for (control/lazygroup.py): completion asks
    for them by name, and each command's options and a group's subcommands follow."""
    assert complete("dead-drop-logger se") == ["plain,search", "plain,serve"]
    assert complete("dead-drop-logger search --cou") == ["plain,--count"]
    assert complete("dead-drop-logger keys n") == ["plain,new"]
    assert complete("dead-drop-logger thread --log-d") == ["plain,--log-dir"]


def test_a_mistyped_command_is_told_the_names_it_is_close_to():
    for typed, close in (("serch", "'search', 'serve'"), ("thred", "'thread'")):
        result = CliRunner().invoke(cli, [typed])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"dead-drop-logger: error: no such command '{typed}'")
        assert close in result.stderr, result.stderr
