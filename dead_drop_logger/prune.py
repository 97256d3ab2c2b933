"""``prune``: retention on demand, for a log directory no logger may be running on."""

from __future__ import annotations

from pathlib import Path

from . import retention
from .clock import Clock, SystemClock, today
from .files import LogDirError
from .state import StateStore


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
