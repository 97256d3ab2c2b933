"""Every command ends the same way outside its own work (dead_drop_logger/control/cli_errors.py):
a usage error is one line and exit 2, stdout failing is one line and exit 2 or, on a
closed pipe, exit 141 with nothing said; float options are finite; PID file trouble and
huge retention windows are the user's words, not Python's."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
import serverdb
from click.testing import CliRunner
from conftest import DEADLINE, HostileLogs, log_with_real_logger, logger_command, run_command

from dead_drop_logger.control.cli import cli
from dead_drop_logger.keep import compress, retention
from dead_drop_logger.logdir.layout import log_files

E = "dead-drop-logger: error: "
HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (
            ["run", "--poll-interval", "0"],
            {},
            "invalid value for --poll-interval: 0.0 is not in the range x>0",
        ),
        (
            ["run"],
            {"DEAD_DROP_POLL_INTERVAL": "0"},
            "invalid value for --poll-interval (from $DEAD_DROP_POLL_INTERVAL):"
            " 0.0 is not in the range x>0",
        ),
        (
            ["run", "--max-bytes", "10XB"],
            {},
            "invalid value for --max-bytes: '10XB' is not a size (examples: 10MB, 512KB, 1048576)",
        ),
        (
            ["search", "--limit", "-1"],
            {},
            "invalid value for -n/--limit: -1 is not in the range x>=0",
        ),
        (
            ["start", "--pid-file", "/"],
            {},
            "invalid value for --pid-file: file '/' is a directory",
        ),
        (
            ["search", "--room", "../x"],
            {},
            "invalid value for --room: room name '../x' cannot hold '/' or start with '.'",
        ),
        (["report"], {}, "missing option --output/-o"),
        (["run", "--bogus"], {}, "no such option --bogus"),
        (["nosuch"], {}, "no such command 'nosuch'"),
        (
            ["thread", "x"],
            {},
            "invalid value for ID: 'x' is not a message id (a number, as 2362 or #2362)",
        ),
        (
            ["config", "--db", "a.db", "--rooms-dir", "/r"],
            {},
            "invalid value for --db: a bare --db PATH cannot be combined with --rooms-dir;"
            " name it: --db NAME=PATH",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], env: dict[str, str], line: str
) -> None:
    result = CliRunner().invoke(cli, args, env=env)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"{E}{line}\n")


def test_help_still_works() -> None:
    for args in (["--help"], ["run", "-h"], []):
        result = CliRunner().invoke(cli, args)
        assert "Usage: " in result.output and "Error" not in result.output, args
    assert CliRunner().invoke(cli, ["search", "--help"]).exit_code == 0


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e400"])
@pytest.mark.parametrize(
    ("command", "option"),
    [("run", "--poll-interval"), ("search", "--interval"), ("stop", "--timeout")],
)
def test_float_options_are_finite(command: str, option: str, value: str) -> None:
    result = CliRunner().invoke(cli, [command, option, value])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{E}invalid value for {option}: "), result.stderr
    assert result.stderr.count("\n") == 1


def test_poll_interval_nan_is_refused_from_the_environment_and_the_settings_file(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(cli, ["config"], env={"DEAD_DROP_POLL_INTERVAL": "nan"})
    assert (result.exit_code, result.stderr) == (
        2,
        f"{E}invalid value for --poll-interval (from $DEAD_DROP_POLL_INTERVAL):"
        " 'nan' is not a finite number\n",
    )
    settings = tmp_path / "config.toml"
    for value in ("nan", "inf", "+inf"):
        settings.write_text(f"log_dir = '/tmp'\npoll_interval = {value}\n")
        result = CliRunner().invoke(cli, ["config", "--config", str(settings)])
        got = float(value)
        assert (result.exit_code, result.stderr) == (
            2,
            f"{E}{settings}:2: poll_interval: must be a finite number (got {got})\n",
        )


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*logger_command(), *args],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=DEADLINE,
        **kwargs,  # type: ignore[call-overload]
    )


def _reading_commands(logs: Path) -> list[list[str]]:
    where = ["--log-dir", str(logs)]
    return [
        ["search", *where],
        ["search", "--json", *where],
        ["stats", *where],
        ["stats", "--json", *where],
        ["agents", *where],
        ["config"],
        ["config", "--example"],
        ["status"],
        ["--help"],
    ]


def test_a_full_disk_on_stdout_is_one_line_and_exit_2(
    hostile_logs: HostileLogs, home_env: dict[str, str]
) -> None:
    for args in _reading_commands(hostile_logs.log_dir):
        with open("/dev/full", "w") as full:
            done = _run(args, stdout=full, env=home_env)
        assert (done.returncode, done.stderr) == (
            2,
            f"{E}cannot write output: No space left on device\n",
        ), args


def test_a_closed_pipe_ends_quietly_with_141(
    hostile_logs: HostileLogs, home_env: dict[str, str]
) -> None:
    """The pipe's reader is gone before the command writes: every write is EPIPE."""
    for args in _reading_commands(hostile_logs.log_dir):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            done = _run(args, stdout=write_end, env=home_env)
        finally:
            os.close(write_end)
        assert (done.returncode, done.stderr) == (141, ""), args


def test_search_into_head_through_a_shell_pipeline(tmp_path: Path) -> None:
    """`search | head -1` as a user types it; the output is far more than a pipe holds,
    so the search is still writing when head exits."""
    db, logs = tmp_path / "m.db", tmp_path / "logs"
    serverdb.create(db)
    serverdb.send_many(db, 300, prefix="x" * 1000)
    log_with_real_logger(db, logs)
    command = " ".join([*logger_command(), "search", "--log-dir", str(logs)])
    done = subprocess.run(
        ["bash", "-c", f"{command} | head -1; echo ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    first, status = done.stdout.splitlines()
    assert first.endswith("#1")  # the first message's header line
    assert (status, done.stderr) == ("141", "")


def test_a_huge_retention_keeps_everything_instead_of_overflowing(tmp_path: Path) -> None:
    (tmp_path / "messages-0001-01-02.json").write_text("{}\n")
    (tmp_path / "messages-2026-01-01.json").write_text("{}\n")
    for days in ("1000000", HUGE):
        result = CliRunner().invoke(
            cli, ["prune", "--log-dir", str(tmp_path), "--retention-days", days, "--dry-run"]
        )
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", "would delete 0 files\n")
    today = dt.date(2026, 11, 29)
    assert retention.cutoff(today, int(HUGE)) == dt.date.min
    assert retention.cutoff(today, 30) == dt.date(2026, 10, 30)
    files = log_files(tmp_path)
    assert retention.expired_by_age(files, today, int(HUGE)) == []
    assert compress.select(files, today, int(HUGE), protected=()) == []


def test_a_pid_file_that_cannot_be_created_is_named_with_the_reason(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    """A read-only file system needs a mount (root); a symbolic link where the PID file
    goes is refused the same way, in the daemon for `start` as in `run`."""
    pid = tmp_path / "x.pid"
    pid.symlink_to(tmp_path / "elsewhere")
    where = ["--db", str(tmp_path / "m.db"), "--log-dir", str(tmp_path / "logs")]
    for command in ("run", "start"):
        done = run_command(command, *where, "--pid-file", str(pid), env=home_env)
        assert (done.returncode, done.stderr) == (
            1,
            f"{E}cannot create PID file {pid}: a symbolic link is in the way\n",
        ), command
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    pid = blocker / "sub" / "x.pid"
    done = run_command("run", *where, "--pid-file", str(pid), env=home_env)
    assert (done.returncode, done.stderr) == (
        1,
        f"{E}cannot create PID file {pid}: {blocker} is not a directory\n",
    )


def test_status_of_a_pid_file_that_cannot_be_read_is_lsb_4(tmp_path: Path) -> None:
    garbage = tmp_path / "x.pid"
    garbage.write_text("garbage\n")
    result = CliRunner().invoke(cli, ["status", "--pid-file", str(garbage)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        4,
        "",
        f"{E}PID file {garbage} cannot be read: it holds 'garbage', not a pid\n",
    )
    result = CliRunner().invoke(cli, ["status", "--pid-file", str(tmp_path), "--json"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        4,
        "",
        f"{E}PID file {tmp_path} cannot be read: it is a directory\n",
    )
    garbage.write_text("")  # a holder that died before writing its pid: stale, as before
    result = CliRunner().invoke(cli, ["status", "--pid-file", str(garbage)])
    assert result.exit_code == 1 and "left behind" in result.stdout
