"""Which log files the retention policies delete: by age (``--retention-days``) and by
count (``--keep-files``).

Only the logger's own files (:func:`.layout.log_files`) are ever considered, never the
``messages-current.json`` symlink, never a file of today or a later day. ``--keep-files``
counts only files that hold messages: the empty file made for today at start or at
midnight is not one of the N, or keeping N files would keep N - 1 days of messages
(and a fresh import of N days would lose its oldest at once). Deciding is
kept apart from deleting so ``prune --dry-run`` lists exactly what a real run removes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

from ..clock import days_before
from ..files import fsync_dir
from ..logdir import layout
from ..logdir.layout import LogFile

log = logging.getLogger(__name__)


def cutoff(today: dt.date, retention_days: int) -> dt.date | None:
    """The oldest day kept: days before it are deleted. None when everything is kept.

    A file's age is ``today - day`` in days; it goes once that age exceeds
    ``retention_days``, so ``--retention-days 1`` keeps yesterday and today.
    """
    if retention_days <= 0:
        return None
    return days_before(today, retention_days)


def expired_by_age(files: Sequence[LogFile], today: dt.date, retention_days: int) -> list[LogFile]:
    """Day files (every part, compressed or not) older than the retention window."""
    oldest = cutoff(today, retention_days)
    if oldest is None:
        return []
    return [f for f in files if f.day < oldest and f.day < today]


def expired_by_count(
    files: Sequence[LogFile], keep: int | None, today: dt.date | None = None
) -> list[LogFile]:
    """All but the newest ``keep`` files (by day, then part); the newest is always kept.

    An encrypted day's sealed segments count as one file, the day (a segment is sealed
    every minute or MiB: counting them would keep minutes, not days); plain parts
    (``--max-bytes``) count one each, as documented.

    Given ``today``, today's newest part (the file being written) and any file dated
    later (a message from a client whose clock is ahead) are never chosen: a future
    date must not make the live file look old.
    """
    units: list[list[LogFile]] = []
    for f in sorted(files):
        last = units[-1][-1] if units else None
        if last is not None and f.encrypted and last.encrypted and last.day == f.day:
            units[-1].append(f)
        else:
            units.append([f])
    if not keep or len(units) <= keep:
        return []
    spared: list[int] = []
    if today is not None:
        spared = [i for i, unit in enumerate(units) if unit[0].day > today]
        live = [i for i, unit in enumerate(units) if unit[0].day == today]
        spared += live[-1:]
    candidates = [unit for i, unit in enumerate(units) if i not in spared]
    return [f for unit in candidates[: max(0, len(units) - max(keep, 1))] for f in unit]


def select(
    log_dir: Path,
    today: dt.date,
    *,
    retention_days: int,
    keep_files: int | None = None,
    protected: Collection[str] = (),
) -> list[LogFile]:
    """The files both policies delete, oldest first; ``protected`` names are never chosen."""
    files = [f for f in layout.log_files(log_dir, layout.KINDS) if f.path.name not in protected]
    doomed = expired_by_age(files, today, retention_days)
    for kind in layout.KINDS:  # --keep-files N: the newest N of each (messages, tasks, agents)
        remaining = [f for f in files if f.kind == kind and f not in doomed and holds_messages(f)]
        doomed += expired_by_count(remaining, keep_files, today)
    return sorted(doomed)


def holds_messages(entry: LogFile) -> bool:
    """Whether a file counts for ``--keep-files``: not a plain file that holds no line
    yet (today's, made before its first message; a quiet day's), nor a vanished one."""
    if entry.sealed:
        return True
    try:
        return entry.path.stat().st_size > 0
    except FileNotFoundError:
        return False


def delete(log_dir: Path, files: Sequence[LogFile]) -> list[Path]:
    """Unlink ``files``; returns those actually removed (a vanished one is not an error)."""
    removed: list[Path] = []
    for entry in files:
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        log.info("retention: deleted %s", entry.path.name)
        removed.append(entry.path)
    if removed:
        fsync_dir(log_dir)
    return removed
