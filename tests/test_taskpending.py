"""The task figures of ``stats``/``report`` computed in a forked child (read/taskpending.py)
are the figures computed in process, and the child's failures fall back to that."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
from pathlib import Path

import pytest
from test_task_stats import fortnight

from dead_drop_logger.read import taskpending, taskstats
from dead_drop_logger.read.logread import LogDir, Reader, Window

NOW = dt.datetime(2026, 3, 16)


def reader(log_dir: Path) -> Reader:
    return Reader([LogDir(log_dir)], Window())


def test_forked_figures_equal_the_figures_in_process(tmp_path: Path) -> None:
    fortnight(tmp_path)
    (tmp_path / "tasks-2026-03-09.json").open("ab").write(b"{not json\n")  # one corrupt line
    here, tasks_here = taskstats.read_figures(reader(tmp_path), NOW)
    pending = taskpending.Pending(reader(tmp_path), NOW)
    assert pending._future is not None  # a child was forked
    there, tasks_there = pending.result()
    assert here is not None and there == here
    assert tasks_there.corrupt_in == tasks_here.corrupt_in != {}  # its problems handed back


def die(*args: object) -> object:
    """In the child: it dies (out of memory, killed)."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def test_no_fork_and_a_dead_child_compute_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fortnight(tmp_path)
    want, _ = taskstats.read_figures(reader(tmp_path), NOW)

    monkeypatch.setattr(taskpending, "figures_of", die)
    dead = taskpending.Pending(reader(tmp_path), NOW)
    monkeypatch.setattr(taskpending, "figures_of", taskstats.figures_of)
    assert dead.result()[0] == want

    def no_fork(method: str) -> object:
        raise ValueError(f"cannot find context for {method!r}")

    monkeypatch.setattr(multiprocessing, "get_context", no_fork)
    here = taskpending.Pending(reader(tmp_path), NOW)
    assert here._future is None and here.result()[0] == want


def test_no_task_file_no_child(tmp_path: Path) -> None:
    pending = taskpending.Pending(reader(tmp_path), NOW)
    assert pending._future is None and pending.result()[0] is None
