"""Start-up: each command imports only what it needs (issue 20).

The whole-process figures of the reading commands (docs/benchmarks.md, "The index")
are mostly the interpreter's start and the modules it loads, so the commands import the
library in their bodies, and the group imports only the module of the command asked for
(``control/lazygroup.py``). Held here without timing: a fresh interpreter runs a command
and says which of our modules (and which heavy standard ones) it loaded.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from dead_drop_logger.control import cli

# Modules no reading command needs (the logger's, the other commands', logging's files).
NEVER_FOR_READING = {
    "logging",  # the writer's (the daemon's log, the sealer's warnings)
    "logging.handlers",
    "tomllib",  # only when there is a settings file
    "dead_drop_logger.diagnostics",
    "dead_drop_logger.signals",
    "dead_drop_logger.control.pidfile",
    "dead_drop_logger.control.daemon",
    "dead_drop_logger.control.notifying",
    "dead_drop_logger.control.progress",
    "dead_drop_logger.control.settings_report",
    "dead_drop_logger.read.stats",
    "dead_drop_logger.read.taskstats",
    "dead_drop_logger.record.pipeline",
    "dead_drop_logger.record.follow",
}
if sys.platform == "linux":  # the settings file's directory, found without it there
    NEVER_FOR_READING.add("platformdirs")
READING = {
    "dead_drop_logger.read.reading",
    "dead_drop_logger.read.logread",
    "dead_drop_logger.read.search",
    "dead_drop_logger.logdir.state",
    "dead_drop_logger.index.store",
    "sqlite3",
}
COMMANDS_PACKAGE = "dead_drop_logger.control.commands"
COMMAND_MODULES = {f"{COMMANDS_PACKAGE}.{target.split(':')[0]}" for target in cli.COMMANDS.values()}
SCRIPT = """
import json, sys
sys.argv = ["dead-drop-logger", *json.loads(sys.argv[1])]
from dead_drop_logger.control import cli
if len(sys.argv) > 1:
    try:
        cli.main()
    except SystemExit:
        pass
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def loaded(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    marker = done.stdout.rindex("\nMODULES ")
    return set(json.loads(done.stdout[marker + len("\nMODULES ") :]))


def test_importing_the_command_line_loads_no_command_s_modules() -> None:
    modules = loaded()
    assert modules & (NEVER_FOR_READING | READING) == set()
    assert not any(m.startswith(COMMANDS_PACKAGE) for m in modules)
    assert not any(
        m.startswith(("dead_drop_logger.record.", "dead_drop_logger.serve.")) for m in modules
    )


def command_modules(modules: set[str]) -> set[str]:
    """The modules of commands (not their shared helpers) among ``modules``."""
    return modules & COMMAND_MODULES


@pytest.mark.parametrize("command", ["search", "stats", "agents", "thread", "run", "index"])
def test_help_loads_no_library_module(command: str) -> None:
    modules = loaded(command, "--help")
    assert modules & (NEVER_FOR_READING | READING) == set()


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_a_command_loads_its_own_module_and_no_other_command_s(command: str) -> None:
    module, _, _ = cli.COMMANDS[command].partition(":")
    assert command_modules(loaded(command, "--help")) == {f"{COMMANDS_PACKAGE}.{module}"}


def test_the_group_s_help_loads_every_command_and_lists_each_with_its_short_help() -> None:
    """The one page that needs them all: each command's short help is written once,
    beside the command (no copy in the table to drift from it)."""
    done = subprocess.run(
        [sys.executable, "-m", "dead_drop_logger", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    listed = dict(
        line.split(None, 1) for line in done.stdout.split("Commands:\n", 1)[1].splitlines()
    )
    every = cli.cli.every_command()
    assert listed == {name: every[name].get_short_help_str(200) for name in cli.COMMANDS}
    assert command_modules(loaded("--help")) == COMMAND_MODULES


def test_the_table_names_each_command_by_its_own_name_and_misses_none() -> None:
    """A command defined in a module of commands/ but not in the table could not be
    run: every click command at the top of those modules is in the table, by its name."""
    every = cli.cli.every_command()
    assert all(every[name].name == name for name in cli.COMMANDS)
    nested = [c for g in every.values() if isinstance(g, click.Group) for c in g.commands.values()]
    package = Path(cli.__file__).parent / "commands"
    defined = set()
    for path in sorted(package.glob("*.py")):
        module = importlib.import_module(f"{COMMANDS_PACKAGE}.{path.stem}")
        defined |= {
            f"{path.stem}:{attribute}"
            for attribute, value in vars(module).items()
            if isinstance(value, click.Command) and not any(value is c for c in nested)
        }
    assert "keys:keys" in defined and "keys:keys_new" not in defined  # the test sees them
    assert defined == set(cli.COMMANDS.values())


def test_search_count_loads_the_reading_modules_and_no_others(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "messages-2026-01-05.json").write_text(
        '{"id":1,"from_agent":"a","to_agent":"b","content":"hi","timestamp":'
        '"2026-01-05T10:00:00","is_cc":0}\n'
    )
    modules = loaded("search", "--count", "--log-dir", str(log_dir))
    assert "dead_drop_logger.read.search" in modules  # the test sees what it runs
    assert modules & NEVER_FOR_READING == set()
    loaded("index", "--log-dir", str(log_dir))
    modules = loaded("search", "--count", "--log-dir", str(log_dir))
    assert "dead_drop_logger.read.indexquery" in modules  # through the index, this time
    assert modules & NEVER_FOR_READING == set()
    prefixes = ("dead_drop_logger.record.", "dead_drop_logger.serve.", "dead_drop_logger.ship.")
    assert not any(m.startswith(prefixes) for m in modules)
    assert command_modules(modules) == {f"{COMMANDS_PACKAGE}.search"}  # no other command's
