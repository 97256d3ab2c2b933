"""Start-up: each command imports only what it needs (issue 20).

The whole-process figures of the reading commands (docs/benchmarks.md, "The index")
are mostly the interpreter's start and the modules it loads, so ``control/cli.py``
imports the library in the commands' bodies. Held here without timing: a fresh
interpreter runs a command and says which of our modules (and which heavy standard
ones) it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Modules no reading command needs (the logger's, the other commands', logging's files).
NEVER_FOR_READING = {
    "logging.handlers",
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
READING = {
    "dead_drop_logger.read.reading",
    "dead_drop_logger.read.logread",
    "dead_drop_logger.read.search",
    "dead_drop_logger.logdir.state",
    "dead_drop_logger.index.store",
    "sqlite3",
}
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
    assert not any(
        m.startswith(("dead_drop_logger.record.", "dead_drop_logger.serve.")) for m in modules
    )


@pytest.mark.parametrize("command", ["search", "stats", "agents", "thread", "run", "index"])
def test_help_loads_no_library_module(command: str) -> None:
    modules = loaded(command, "--help")
    assert modules & (NEVER_FOR_READING | READING) == set()


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
    prefixes = ("dead_drop_logger.record.", "dead_drop_logger.serve.", "dead_drop_logger.ship.")
    assert not any(m.startswith(prefixes) for m in modules)
