"""How ``search`` (and ``thread``) show messages to people: ``search PATTERN`` as grep,
the short options, ``--oneline`` to scan or grep, and very long content cut in the text
view unless ``--full``; through the real command (a pipe, and a real terminal: a pty)
and click's runner, on logs the real logger wrote."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from pathlib import Path
from typing import Any

import pytest
import serverdb
from click.testing import CliRunner
from conftest import HostileLogs, log_with_real_logger, logger_command

from dead_drop_logger.control.cli import cli
from dead_drop_logger.read.textformat import display_width

LONG = "".join(f"row {i:04d} of the pasted log\n" for i in range(200))  # 5,400 characters
NO_COLUMNS: dict[str, str | None] = {"COLUMNS": None, "NO_COLOR": "1"}


def run(log_dir: Path, *args: str, env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(
        cli, ["search", "--log-dir", str(log_dir), *args], env={**NO_COLUMNS, **(env or {})}
    )


# -- search PATTERN, -c, -n ------------------------------------------------------------


def test_a_pattern_is_contains_and_the_short_options_are_the_long_ones(
    hostile_logs: HostileLogs,
) -> None:
    log_dir = hostile_logs.log_dir
    contains = run(log_dir, "--contains", "deploy merge", "--json")
    assert contains.exit_code == 0 and contains.stdout_bytes.count(b"\n") >= 6
    assert run(log_dir, "deploy merge", "--json").stdout_bytes == contains.stdout_bytes
    folded = run(log_dir, "-i", "--contains", "DEPLOY MERGE", "--json").stdout_bytes
    assert run(log_dir, "DEPLOY MERGE", "-i", "--json").stdout_bytes == folded
    assert len(folded) > len(contains.stdout_bytes)  # "Deploy Merge upper" too
    # PATTERN and --contains: both must be there
    both = run(log_dir, "deploy", "--contains", "done", "--json").stdout_bytes
    assert both == run(log_dir, "--contains", "done", "--contains", "deploy", "--json").stdout_bytes
    assert both and all(b"deploy merge done" in line for line in both.splitlines())
    assert run(log_dir, "-c", "deploy").stdout == run(log_dir, "--count", "deploy").stdout
    assert run(log_dir, "-n", "3", "--json").stdout_bytes == (
        run(log_dir, "--limit", "3", "--json").stdout_bytes
    )
    nothing = run(log_dir, "-n", "0")  # as grep -m 0
    assert (nothing.exit_code, nothing.stdout) == (1, "")
    assert run(log_dir, "no such text anywhere").exit_code == 1
    extra = run(log_dir, "deploy", "merge")
    assert (extra.exit_code, extra.stderr) == (
        2,
        "dead-drop-logger: error: got unexpected extra argument (merge)\n",
    )


# -- --oneline -------------------------------------------------------------------------


def test_oneline_is_one_line_per_message_with_line_breaks_marked(
    hostile_logs: HostileLogs,
) -> None:
    log_dir, ids = hostile_logs.log_dir, hostile_logs.ids
    result = run(log_dir, "--oneline", "--from", "juno", "--to", "orion", "line1")
    assert (result.exit_code, result.stdout) == (
        0,
        f"2026-02-18 13:00:00  juno → orion  #{ids['controls']}  line1⏎line2 tab \\u0001 ctrl\n",
    )
    separators = run(log_dir, "--oneline", "--no-cc", "sep\u2028and")
    assert separators.stdout == (
        f"2026-02-18 14:00:00  juno → vega  #{ids['separators']}  sep⏎and⏎ deploy merge\n"
    )
    every = run(log_dir, "--oneline")
    assert every.exit_code == 0
    assert len(every.stdout.splitlines()) == int(run(log_dir, "-c").stdout)
    blob = run(log_dir, "--oneline", "--from", "juno", "--since", "2026-02-19T08:00", "-n", "1")
    assert blob.stdout.endswith("  [binary content, 12 bytes]\n")
    for args in (["--json"], ["-c"]):
        refused = run(log_dir, "--oneline", *args)
        assert (refused.exit_code, refused.stderr) == (
            2,
            "dead-drop-logger: error: --oneline cannot be combined with --json or --count\n",
        )


def test_oneline_fits_columns_but_stays_whole_into_a_pipe(hostile_logs: HostileLogs) -> None:
    log_dir = hostile_logs.log_dir
    whole = run(log_dir, "--oneline", "--no-cc", "filler").stdout.splitlines()
    assert len(whole) == 30 and all(line.endswith("x" * 100) for line in whole)
    cut = run(log_dir, "--oneline", "--no-cc", "filler", env={"COLUMNS": "60"}).stdout.splitlines()
    assert len(cut) == 30
    for long, short in zip(whole, cut, strict=True):
        assert display_width(short) == 60 and short.endswith("…")
        assert long.startswith(short[:-1])
    wide = run(log_dir, "--oneline", "--agent", "名前", env={"COLUMNS": "30"}).stdout
    assert display_width(wide.rstrip("\n")) <= 30 and wide.rstrip("\n").endswith("…")
    full = run(log_dir, "--oneline", "--full", "--no-cc", "filler", env={"COLUMNS": "60"}).stdout
    assert full.splitlines() == whole


def on_a_terminal(columns: int, *args: str) -> str:
    """``dead-drop-logger ARGS`` with its output on a real terminal (a pty) ``columns``
    wide; what it printed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.Popen(
        [*logger_command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        env={**env, "NO_COLOR": "1"},
    )
    os.close(follower)
    out = b""
    while True:
        try:
            piece = os.read(leader, 65536)
        except OSError:  # EIO: the command has exited and closed the terminal
            break
        if not piece:
            break
        out += piece
    os.close(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    return out.decode("utf-8").replace("\r\n", "\n")


def test_oneline_is_cut_to_the_real_terminals_width(hostile_logs: HostileLogs) -> None:
    shown = on_a_terminal(
        50, "search", "--log-dir", str(hostile_logs.log_dir), "--oneline", "--no-cc", "filler"
    ).splitlines()
    assert len(shown) == 30
    assert all(display_width(line) == 50 and line.endswith("…") for line in shown)


# -- long content: cut in the text view unless --full ----------------------------------


@pytest.fixture(scope="module")
def long_logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A log with one message of 5,400 characters (200 lines) replying to a short one."""
    root = tmp_path_factory.mktemp("long")
    db, log_dir = root / "messages.db", root / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    short = serverdb.send(conn, "juno", "lead", "paste the log", timestamp="2026-02-20T10:00:00")
    long = serverdb.send(
        conn, "lead", "juno", LONG, timestamp="2026-02-20T10:01:00", reply_to=short[0]
    )
    conn.close()
    log_with_real_logger(db, log_dir)
    return log_dir, short[0], long[0]


def test_very_long_content_is_cut_with_a_note_unless_full(
    long_logs: tuple[Path, int, int],
) -> None:
    log_dir, short, long = long_logs
    cut = run(log_dir, "--from", "lead").stdout
    shown = cut.split("\n", 1)[1].rstrip("\n").split("\n")
    assert shown[-1] == "    [cut: 3,400 more characters of 5,400; --full shows all]"
    assert "\n".join(line[4:] for line in shown[:-1]) == LONG[:2000]
    whole = run(log_dir, "--from", "lead", "--full").stdout
    assert (
        whole
        == cut.split("\n", 1)[0]
        + "\n"
        + "".join(f"    {line}\n" for line in LONG.splitlines())
        + "\n"
    )
    assert "[cut:" not in run(log_dir, "--from", "juno").stdout  # short content: whole
    # thread shows messages the same way, so it has --full too
    thread = CliRunner().invoke(cli, ["thread", f"#{short}", "--log-dir", str(log_dir)])
    assert thread.exit_code == 0
    assert "        [cut: 3,400 more characters of 5,400; --full shows all]\n" in thread.stdout
    thread_full = CliRunner().invoke(
        cli, ["thread", str(long), "--full", "--log-dir", str(log_dir)]
    )
    assert "[cut:" not in thread_full.stdout and LONG.splitlines()[-1] in thread_full.stdout
    oneline = CliRunner().invoke(
        cli, ["thread", str(long), "--oneline", "--log-dir", str(log_dir)], env=NO_COLUMNS
    )
    assert oneline.stdout.splitlines()[1] == (
        f"    2026-02-20 10:01:00  lead → juno  #{long}  re #{short}  " + LONG.replace("\n", "⏎")
    )


def test_help_shows_the_new_forms() -> None:
    text = CliRunner().invoke(cli, ["search", "--help"], terminal_width=120).output
    examples = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0]
    used = [line.split()[2:] for line in examples.splitlines()]
    assert any(words and not words[0].startswith("-") for words in used)  # a PATTERN
    for option in ("-c", "-n", "-f", "--oneline", "--full"):
        assert any(option in words for words in used), option
    assert "search -f --to lead" in examples and "the last 10, then live" in examples
