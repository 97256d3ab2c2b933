"""``prune``: retention on demand, beside a running logger or without one.

It covers the log directory and, when it holds rooms, every room's own directory."""

from __future__ import annotations

from pathlib import Path

from ..clock import Clock, SystemClock, today
from ..files import LogDirError
from ..logdir.layout import room_dirs
from ..logdir.state import StateStore
from . import retention


def prune_log_dir(
    log_dir: Path,
    retention_days: int,
    *,
    utc: bool = False,
    dry_run: bool = False,
    clock: Clock | None = None,
) -> list[Path]:
    """Delete the files ``--retention-days`` expires; returns them (all would-be ones
    when ``dry_run``). Takes the writer lock, so it is safe beside a running logger;
    a file of a batch still pending after a crash is left for that batch to cut back.
    """
    if not log_dir.is_dir():
        raise LogDirError(f"log directory {log_dir} does not exist")
    day = today(clock or SystemClock(), utc)
    if dry_run:  # no lock: a dry run changes nothing, not even by creating the lock file
        doomed = retention.select(log_dir, day, retention_days=retention_days)
        return [f.path for f in doomed]
    store = StateStore(log_dir)
    with store.locked():
        state = store.load()
        protected = set(state.pending) if state else set()
        doomed = retention.select(log_dir, day, retention_days=retention_days, protected=protected)
        return retention.delete(log_dir, doomed)


def prune_all(
    log_dir: Path,
    retention_days: int,
    *,
    utc: bool = False,
    dry_run: bool = False,
    clock: Clock | None = None,
) -> list[Path]:
    """:func:`prune_log_dir` over ``log_dir`` and every room's directory in it."""
    doomed = prune_log_dir(log_dir, retention_days, utc=utc, dry_run=dry_run, clock=clock)
    for room in room_dirs(log_dir):
        doomed += prune_log_dir(room, retention_days, utc=utc, dry_run=dry_run, clock=clock)
    return doomed
