"""One day file that cannot be read does not hide the others: like grep, the reading
commands print what the readable files give, warn once per unreadable file on stderr,
and exit 2 at the end.

The fault is real: strace makes the real command's ``openat`` of that one file fail
with EACCES (a chmod cannot, as the tests run as root in CI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import HostileLogs, log_lines, logger_command

from dead_drop_logger.logdir.layout import LOCK_FILE

STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed (.ci/run)")


def denied(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``dead-drop-logger ARGS`` with every open of ``path`` refused (EACCES)."""
    assert STRACE is not None
    trace = path.parent.parent / "strace.log"
    return subprocess.run(
        [STRACE, "-f", "-qq", "-o", str(trace), "-P", str(path), "-e", "trace=openat",
         "-e", "inject=openat:error=EACCES", "--", *logger_command(), *args],
        capture_output=True,
        check=False,
        timeout=120,
    )  # fmt: skip


@pytest.fixture
def logs(hostile_logs: HostileLogs, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the hostile logs, and the plain day file that cannot be read in it."""
    log_dir = tmp_path / "logs"
    shutil.copytree(hostile_logs.log_dir, log_dir, symlinks=True)
    return log_dir, log_dir / "messages-2026-02-19.json"


def warning(path: Path) -> bytes:
    return f"dead-drop-logger: warning: cannot read {path}: Permission denied\n".encode()


def test_search_prints_the_readable_files_then_exits_2(logs: tuple[Path, Path]) -> None:
    log_dir, bad = logs
    hidden = {m["id"] for m in map(json.loads, bad.read_bytes().splitlines())}
    readable = sorted(m["id"] for m in log_lines(log_dir) if m["id"] not in hidden)
    assert hidden and readable
    done = denied(bad, "search", "--log-dir", str(log_dir), "--json")
    assert (done.returncode, done.stderr) == (2, warning(bad))
    assert sorted(json.loads(line)["id"] for line in done.stdout.splitlines()) == readable
    counted = denied(bad, "search", "--log-dir", str(log_dir), "--count")
    assert (counted.returncode, counted.stdout, counted.stderr) == (
        2,
        f"{len(readable)}\n".encode(),
        warning(bad),
    )
    newest = denied(bad, "search", "--log-dir", str(log_dir), "--reverse", "--json")
    assert (newest.returncode, newest.stderr) == (2, warning(bad))
    assert len(newest.stdout.splitlines()) == len(readable)


def test_stats_agents_and_thread_print_what_they_could_read(
    hostile_logs: HostileLogs, logs: tuple[Path, Path]
) -> None:
    log_dir, bad = logs
    every = len(log_lines(log_dir))
    hidden = len(bad.read_bytes().splitlines())
    done = denied(bad, "stats", "--log-dir", str(log_dir), "--json")
    assert (done.returncode, done.stderr) == (2, warning(bad))
    totals = json.loads(done.stdout)["totals"]
    assert totals["messages"] + totals["cc_copies"] == every - hidden
    text = denied(bad, "stats", "--log-dir", str(log_dir))
    assert (text.returncode, text.stderr) == (2, warning(bad))
    assert text.stdout.startswith(b"Totals\n")
    agents = denied(bad, "agents", "--log-dir", str(log_dir))
    assert (agents.returncode, agents.stderr) == (2, warning(bad))
    assert agents.stdout.startswith(b"agent ")
    root = hostile_logs.ids["root"]  # its thread: the 17th, the 19th (hidden), the 20th
    thread = denied(bad, "thread", str(root), "--log-dir", str(log_dir))
    assert (thread.returncode, thread.stderr) == (2, warning(bad))
    assert f"#{root}  task T-1".encode() in thread.stdout
    assert f"#{hostile_logs.ids['done']}".encode() in thread.stdout
    assert f"#{hostile_logs.ids['nested']}".encode() not in thread.stdout


def test_a_room_that_cannot_be_listed_is_a_warning_not_the_end(
    hostile_logs: HostileLogs, tmp_path: Path
) -> None:
    """The log directory and a room ``ops`` in it, whose directory cannot be listed:
    the log directory's matches are printed, the room is named, exit 2."""
    log_dir = tmp_path / "logs"
    shutil.copytree(hostile_logs.log_dir, log_dir, symlinks=True)
    shutil.copytree(hostile_logs.log_dir, log_dir / "ops", symlinks=True)
    assert (log_dir / "ops" / LOCK_FILE).exists()  # a room a logger wrote to
    every = len(log_lines(log_dir))
    done = denied(log_dir / "ops", "search", "--log-dir", str(log_dir), "-c")
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        f"{every}\n".encode(),
        warning(log_dir / "ops"),
    )
