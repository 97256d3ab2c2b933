"""Fault-injection helpers shared by the hardening suite (imported by its tests).

Faults are real: strace tampers with the logger's own system calls (``-P`` confines
it to one file), resource limits make the kernel refuse writes, and other processes
lock, replace or corrupt the database. Every check ends on the same promise: each id
of the database is in the logs exactly once, and the user saw one line per problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import ENCRYPTED_SUITE, LoggerProcess, day_files, log_lines, logged_ids, wait_until
from procs import Reaper, stat_fields

STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="strace is not installed")


def strace_wrapper(trace_log: Path, *rules: str, path: Path | None = None) -> list[str]:
    """A command prefix that runs the logger under strace with ``-e`` ``rules``.

    ``-I1`` lets a SIGTERM to strace detach it, so the fault "clears" while the logger
    keeps running; ``-P path`` confines tracing (and so injection) to that one file.
    """
    assert STRACE is not None
    cmd = [STRACE, "-f", "-qq", "-I1", "-e", "signal=none", "-o", str(trace_log)]
    if path is not None:
        cmd += ["-P", str(path)]
    for rule in rules:
        cmd += ["-e", rule]
    return [*cmd, "--"]


def traced_pid(proc: LoggerProcess) -> int:
    """The pid of a logger started under a wrapper, from its own stderr lines."""

    def announced() -> int | None:
        found = re.search(r"dead-drop-logger\[(\d+)\]", proc.stderr())
        return int(found.group(1)) if found else None

    pid: int = wait_until(announced, what="the logger to say its pid")
    return pid


def injected(trace_log: Path) -> int:
    """How many system calls strace has tampered with so far."""
    try:
        return trace_log.read_text(errors="replace").count("(INJECTED)")
    except FileNotFoundError:
        return 0


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@contextlib.contextmanager
def reaped() -> Iterator[Reaper]:
    """Pids (traced loggers, orphaned once strace goes) to SIGKILL on the way out, each
    only if it is still the process added (see procs: a pid may be reused by then)."""
    reaper = Reaper()
    try:
        yield reaper
    finally:
        reaper.kill_all()


def holds_open(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` has ``folder``, or anything in it, open."""
    where = str(folder.resolve())
    for link in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed since the listing
            target = os.readlink(link)
            if target == where or target.startswith(where + "/"):
                return True
    return False


def all_stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (by SIGSTOP)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = stat_fields(task / "stat")
        if fields is not None and fields[0] != "T":  # None: a thread ended since the listing
            return False
    return True


@contextlib.contextmanager
def paused_outside(pid: int, folder: Path) -> Iterator[None]:
    """Process ``pid`` stopped (SIGSTOP) at a moment it has nothing in ``folder`` open,
    then resumed (SIGCONT) on the way out.

    For the logger and its log dir: every batch (and so every state save) holds the
    lock file open from its first step to its last, so the logger is paused between
    batches, never halfway through one. (The rotator's link and file steps hold nothing
    open, but it only acts at start, at midnight and on a part switch.)
    """

    def stopped_outside() -> bool:
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: all_stopped(pid), what=f"process {pid} to stop")
        if not holds_open(pid, folder):
            return True
        os.kill(pid, signal.SIGCONT)  # mid-batch: let it finish, try again
        return False

    try:
        wait_until(stopped_outside, what=f"process {pid} to stop outside {folder}")
        yield
    finally:
        kill_pid(pid, signal.SIGCONT)


def state(log_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((log_dir / ".dead-drop-logger.state").read_bytes())
    return data


def assert_exactly_once(log_dir: Path, db: Path, after: int = 0) -> None:
    """Every id of the database above ``after`` (the first start's position) is logged
    once; in a ``sealed`` test (see encryptvariants), only in sealed segments."""
    assert logged_ids(log_dir) == [i for i in serverdb.all_ids(db) if i > after]
    if os.environ.get(ENCRYPTED_SUITE) == "1":
        plain = [p.name for p in day_files(log_dir, "*-*.json*") if p.suffix != ".age"]
        assert not plain, f"plaintext log files with encryption on: {plain}"


def lines_so_far(log_dir: Path) -> list[dict[str, Any]] | None:
    """The logged lines, or None when a file was caught mid-append (look again)."""
    try:
        return log_lines(log_dir, grace=0)
    except AssertionError as exc:
        if "partial line" in str(exc):
            return None
        raise


def wait_all_logged(log_dir: Path, db: Path, timeout: float | None = None, after: int = 0) -> None:
    """Until every id of the database above ``after`` is logged (fails at once on a
    doubled id)."""
    want = [i for i in serverdb.all_ids(db) if i > after]

    def done() -> bool:
        lines = lines_so_far(log_dir)  # None: caught mid-append (a 10 MB line)
        if lines is None:
            return False
        got = sorted(int(obj["id"]) for obj in lines)
        assert len(got) == len(set(got)), "an id was logged twice"
        return got == want

    kwargs = {} if timeout is None else {"timeout": timeout}
    wait_until(done, what=f"all {len(want)} ids to be logged", **kwargs)


def count(text: str, needle: str) -> int:
    """Lines of ``text`` containing ``needle``."""
    return sum(needle in line for line in text.splitlines())


def said(text: str, needle: str) -> int:
    """Lines of ``text`` containing ``needle`` that a user is told (``--log-level
    debug`` adds DEBUG lines about the same trouble, not said to a user)."""
    return sum(needle in line and " DEBUG: " not in line for line in text.splitlines())


def assert_clean(stderr: str) -> None:
    """What a user sees: never a traceback (outside --log-level debug)."""
    assert "Traceback" not in stderr, stderr
    assert "Logging error" not in stderr, stderr


def wait_stderr(proc: LoggerProcess, needle: str, what: str | None = None) -> str:
    return str(
        wait_until(
            lambda: needle in proc.stderr() and proc.stderr(),
            what=what or f"{needle!r} on stderr",
        )
    )


def retries(stderr: str) -> int:
    """Retries the logger made (its --log-level debug "retry N in S" lines)."""
    return count(stderr, "DEBUG: retry ")


def insert(db: Path, rows: Sequence[dict[str, Any]], *, raw: Sequence[str] = ()) -> list[int]:
    """Insert messages column by column; ``raw`` names columns given as SQL text."""
    conn = serverdb.connect(db)
    ids: list[int] = []
    try:
        for row in rows:
            cols = list(row)
            marks = [row[c] if c in raw else "?" for c in cols]
            params = [row[c] for c in cols if c not in raw]
            sql = f"INSERT INTO messages ({', '.join(cols)}) VALUES ({', '.join(marks)})"
            ids.append(int(conn.execute(sql, params).lastrowid or 0))
    finally:
        conn.close()
    return ids


def with_connection(db: Path, action: Callable[[sqlite3.Connection], object]) -> None:
    conn = serverdb.connect(db)
    try:
        action(conn)
    finally:
        conn.close()
