"""``prune``: the file policies on demand, beside a running logger or without one.

It applies the same policies as a running logger's housekeeping (``--retention-days``,
``--keep-files``, ``--compress-after``, read from the same settings), so ``prune
--dry-run`` shows what the logger would do at its next start or midnight. It covers the
log directory and, when it holds rooms, every room's own directory."""

from __future__ import annotations

from pathlib import Path

from ..clock import Clock, SystemClock, today
from ..files import LogDirError
from ..logdir import layout
from ..logdir.layout import room_dirs
from . import compress, housekeeping, retention
from .housekeeping import Outcome, Policy


def prune_log_dir(
    log_dir: Path,
    policy: Policy,
    *,
    utc: bool = False,
    dry_run: bool = False,
    clock: Clock | None = None,
) -> Outcome:
    """Delete (and compress) the files ``policy`` says; returns them (all would-be ones
    when ``dry_run``). Takes the writer lock, so it is safe beside a running logger;
    a file of a batch still pending after a crash is left for that batch to cut back.
    """
    if not log_dir.is_dir():
        raise LogDirError(f"log directory {log_dir} does not exist")
    day = today(clock or SystemClock(), utc)
    if dry_run:  # no lock: a dry run changes nothing, not even by creating the lock file
        doomed = retention.select(
            log_dir, day, retention_days=policy.retention_days, keep_files=policy.keep_files
        )
        left = [f for f in layout.log_files(log_dir, layout.KINDS) if f not in doomed]
        packed = compress.select(left, day, policy.compress_after, ())
        return Outcome([f.path for f in doomed], [f.path for f in packed])
    return housekeeping.run(log_dir, day, policy)


def prune_all(
    log_dir: Path,
    policy: Policy,
    *,
    utc: bool = False,
    dry_run: bool = False,
    clock: Clock | None = None,
) -> Outcome:
    """:func:`prune_log_dir` over ``log_dir`` and every room's directory in it."""
    done = prune_log_dir(log_dir, policy, utc=utc, dry_run=dry_run, clock=clock)
    for room in room_dirs(log_dir):
        more = prune_log_dir(room, policy, utc=utc, dry_run=dry_run, clock=clock)
        done.deleted += more.deleted
        done.compressed += more.compressed
    return done
