"""The historical export: log every message already in a database that its log lacks.

Why it is a module of its own: ``dead-drop-logger export``, ``export_historical.py``
(a thin wrapper kept for old scripts) and ``install.sh --import-historical`` are one
command; it lives in the library so that the command line only parses options and
prints, and so ``run --import-historical`` plans its import the same way (:func:`.history.plan`).

It writes into the same log directory, in the same format, under the same per-batch
lock and state as a running logger (the pipeline's backfill), so it never writes a
message twice, whether a logger runs at the same time, ran before, or the export itself
is interrupted and run again. Messages newer than the logger's position are left to
the logger.

History older than the retention window is not written (the logger's housekeeping
would delete it at its next start or midnight); the caller is told before anything is
written (``before``), so it can say what retention will do while the user can still
choose ``retention_days = 0``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..clock import Clock, SystemClock
from . import history
from .follow import TRANSIENT
from .history import Outside, plan
from .pipeline import Pipeline, Progress
from .sealed import SegmentWriter
from .source import Source, SourceError, SourceMissing, SourceUnusable
from .writer import DayWriter

log = logging.getLogger("dead_drop_logger.export")
ATTEMPTS = 5
T = TypeVar("T")

Report = Callable[[int, int], None]
"""Progress: called with (rows written so far, rows to write in all), first with 0."""


class ExportError(Exception):
    """The database cannot be exported (missing, not a database): one line for the user."""


@dataclass(frozen=True)
class Exported:
    written: int
    low: int | None  # the id range exported (None: no message in the days asked for)
    top: int
    already: int  # messages of the range the log held before
    outside: Outside | None  # what retention left out (this run's and earlier runs')
    interrupted: bool = False


def export(
    db: Path,
    log_dir: Path,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    utc: bool = False,
    retention_days: int = 0,
    max_bytes: int | None = None,
    stop: threading.Event | None = None,
    keep_files: int | None = None,
    before: Callable[[str], None] = lambda note: None,
    progress: Report | None = None,
    clock: Clock | None = None,
    recipients: tuple[str, ...] = (),
) -> Exported:
    """Log every message of ``db`` dated ``since`` to ``until`` (inclusive days, by the
    day a message is filed under) that ``log_dir`` lacks.

    ``before`` is called, before anything is written, with each line to say about what
    retention leaves out and what ``keep_files`` would delete. Raises ExportError (the
    database is missing or not one), LogDirError, or a transient error (a lock held
    too long, a full disk): run it again to resume.
    """
    stop = stop or threading.Event()
    clock = clock or SystemClock()
    if not db.exists():
        raise ExportError(f"database {db} does not exist")
    try:  # before the log directory is made: a file that is no database leaves nothing
        _readable(db, stop)
        bounds = history.id_range(db, since, until, utc=utc)
    except (SourceMissing, SourceUnusable) as exc:
        raise ExportError(str(exc)) from None
    except SourceError as exc:
        raise ExportError(str(exc)) from None
    source = Source(db, utc=utc)
    try:
        writer: DayWriter = (
            SegmentWriter(log_dir, clock, recipients, utc=utc)  # encrypted: sealed segments
            if recipients
            else DayWriter(log_dir, clock, utc=utc, max_bytes=max_bytes)
        )
        pipeline = Pipeline(source, log_dir, writer)
        state = _retry(lambda: pipeline.prepare(database_existed=True), stop)
        if bounds is None:
            return Exported(0, None, 0, 0, None)
        low, high = bounds
        top = min(high, state.position)
        todo = plan(
            db,
            state,
            low,
            top,
            retention_days=retention_days,
            utc=utc,
            clock=clock,
            keep_files=keep_files,
            log_dir=log_dir,
        )
        for note in todo.notes():
            before(note)
        done = Progress()
        if progress is not None:
            progress(0, todo.rows)

        def page(step: Progress) -> None:
            done.lines += step.lines
            if progress is not None:
                progress(done.lines, todo.rows)

        _retry(
            lambda: pipeline.backfill(
                low, high, should_stop=stop.is_set, on_page=page, retention_days=retention_days
            ),
            stop,
        )
    finally:
        source.close()
    return Exported(done.lines, low, top, todo.already, todo.outside, stop.is_set())


def _readable(db: Path, stop: threading.Event) -> None:
    """Raises SourceError unless ``db`` is a Dead Drop database that can be read (a
    locked one is waited for, as the export does)."""
    source = Source(db)
    try:
        _retry(source.max_id, stop)
    finally:
        source.close()


def _retry(action: Callable[[], T], stop: threading.Event) -> T:
    """Run ``action``, retrying transient trouble (a locked database) with backoff.

    Safe because every batch is its own transaction: a retry resumes where it stopped.
    A missing file, or one that is not a Dead Drop database, is not retried: waiting
    cannot change it (unlike for the follower, which waits for the server to set up).
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except TRANSIENT as exc:
            if (
                attempt == ATTEMPTS
                or stop.is_set()
                or isinstance(exc, SourceMissing | SourceUnusable)
            ):
                raise
            log.warning("%s; retrying", exc)
            stop.wait(2.0**attempt / 2)
    raise AssertionError("unreachable")
