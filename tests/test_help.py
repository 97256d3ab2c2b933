"""Every command's --help says what it does and shows at least one example of its use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dead_drop_logger.control.cli import cli

COMMANDS = sorted(cli.every_command())


def test_the_reading_commands_are_there() -> None:
    assert {"search", "thread", "agents"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_text_and_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0
    command = cli.every_command()[name]
    assert isinstance(command, click.Command) and (command.help or "").strip()
    assert "Examples:\n" in result.output
    example = result.output.split("Examples:\n", 1)[1].splitlines()[0]
    assert example.strip().startswith(f"dead-drop-logger {name}"), example


def test_the_command_list_is_not_cut_mid_phrase() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    assert len(listed) == len(COMMANDS)
    assert not [line for line in listed if line.endswith("...")], listed


@pytest.mark.parametrize("name", ["search", "thread", "agents", "tasks", "stats", "report"])
def test_reading_commands_say_how_the_logs_were_written(name: str) -> None:
    """--utc of a reading command describes the logs, not a writer's choice; the settings
    file applies to them too (--config)."""
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
    assert "The logs were written with --utc" in result.output
    assert "Date files and midnight" not in result.output
    assert "--config FILE" in result.output


@pytest.mark.parametrize("name", ["prune"])
def test_one_shot_retention_says_now(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
    assert "once, now" in result.output and "after each midnight" not in result.output


def test_agents_json_help_says_one_object_per_agent() -> None:
    result = CliRunner().invoke(cli, ["agents", "--help"], terminal_width=200)
    assert "one line per agent" in result.output
    assert "exactly as stored" not in result.output


ROOT = Path(__file__).resolve().parent.parent


def test_the_export_script_has_an_example_and_a_one_shot_retention() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "export_historical.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    example = done.stdout.split("Examples:\n", 1)[1].splitlines()[0]
    assert example.strip().startswith("python export_historical.py"), example
    assert "once, now" in done.stdout and "after each midnight" not in done.stdout


def test_the_test_writer_says_what_its_options_are() -> None:
    import serverdb

    assert "--leads" not in (serverdb.__doc__ or "")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "serverdb.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    for option in ("--sends", "--interval", "--prefix"):
        line = next(x for x in done.stdout.splitlines() if x.strip().startswith(option))
        assert len(line.split()) > 2, line  # option, metavar, then its help
