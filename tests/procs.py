"""Processes a test kills on the way out, never a stranger that inherited their pid.

A pid recorded early in a test may belong to another process by teardown: the one
recorded died, was reaped, and the kernel handed its pid out again (pid_max is often
32768). So a process is recorded with its start time, and signalled only while the
pid still has that start time. Lives in tests/ (on sys.path for every test, unlike
tests/faults/) so that both the daemon tests and faultkit can use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def stat_fields(stat: Path) -> list[str] | None:
    """The fields of a /proc/PID[/task/TID]/stat file after the command name (so
    ``[0]`` is the state and ``[19]`` the start time), or None when it is gone."""
    try:
        text = stat.read_text()
    except OSError:
        return None
    # Field 2, the command name in parentheses, may hold spaces and ")": split after it.
    return text.rsplit(")", 1)[1].split()


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper counts as dead)."""
    if not Path("/proc/self/stat").exists():  # no procfs: a zombie looks alive here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    fields = stat_fields(Path(f"/proc/{pid}/stat"))
    return fields is not None and fields[0] != "Z"


def start_time(pid: int) -> int | None:
    """When ``pid`` started (field 22 of /proc/PID/stat: clock ticks since boot), or
    None when there is no such process (or no procfs to tell)."""
    fields = stat_fields(Path(f"/proc/{pid}/stat"))
    return int(fields[19]) if fields is not None else None


def kill_if_same(pid: int, started: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` only if it is still the process that started at ``started``."""
    try:
        pidfd = os.pidfd_open(pid)  # pins that process: its pid cannot be reused under us
    except ProcessLookupError:
        return
    try:
        if start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):  # it has exited since
                signal.pidfd_send_signal(pidfd, sig)
    finally:
        os.close(pidfd)


class Reaper:
    """Processes to SIGKILL at the end of a test, each identified when it is added
    (without procfs none can be, and none is killed)."""

    def __init__(self) -> None:
        self._known: list[tuple[int, int]] = []

    def add(self, pid: int) -> None:
        started = start_time(pid)
        if started is not None:  # already gone (and reaped): nothing to kill later
            self._known.append((pid, started))

    def kill_all(self) -> None:
        for pid, started in self._known:
            kill_if_same(pid, started)
