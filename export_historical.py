#!/usr/bin/env python3
"""One-time historical export: log every message already in a Dead Drop database.

    python export_historical.py [--db PATH] [--log-dir DIR] [--since DATE] [--until DATE]

A thin wrapper over the package's backfill: it writes into the same log directory, in
the same format, under the same per-batch lock and state as a running logger, so it
never writes a message twice, whether a logger runs at the same time, ran before, or
the export itself is interrupted and run again. Messages newer than the logger's
position are left to the logger (``dead-drop-logger run`` or ``start``).

--since and --until are inclusive days (YYYY-MM-DD), by the day a message is filed
under (its own timestamp, local as the server wrote it, or UTC with --utc). They map to
the id range from the first message on/after --since to the last on/before --until.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dead_drop_logger import diagnostics
from dead_drop_logger.clock import SystemClock
from dead_drop_logger.control import options
from dead_drop_logger.control.cli_errors import OneLineErrors
from dead_drop_logger.files import LogDirError
from dead_drop_logger.logdir import ranges as idranges
from dead_drop_logger.record import history
from dead_drop_logger.record.follow import TRANSIENT
from dead_drop_logger.record.pipeline import Pipeline, Progress
from dead_drop_logger.record.source import Source, SourceError, SourceMissing, SourceUnusable
from dead_drop_logger.record.writer import DayWriter
from dead_drop_logger.signals import StopEvent, stop_on_signals

log = logging.getLogger("dead_drop_logger.export")
ATTEMPTS = 5
T = TypeVar("T")


class ExportCommand(OneLineErrors):
    """Usage errors, a closed pipe or a full disk end as for dead-drop-logger's commands."""

    program = "export_historical.py"


def fail(message: str, code: int = 1) -> None:
    click.echo(f"{ExportCommand.program}: error: {message}", err=True)
    sys.exit(code)


def day_option(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        name, type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD", help=help_text
    )


@click.command(cls=ExportCommand, context_settings={"help_option_names": ["-h", "--help"]})
@options.db_path
@options.log_dir
@day_option("--since", "Only messages from this day on (inclusive).")
@day_option("--until", "Only messages up to this day (inclusive).")
@options.utc
@options.retention_days_now
@options.log_level
def main(
    db: Path,
    log_dir: Path,
    since: dt.datetime | None,
    until: dt.datetime | None,
    utc: bool,
    retention_days: int,
    log_level: str,
) -> None:
    """Log every message already in the database that the log directory lacks.

    \b
    Examples:
      python export_historical.py
      python export_historical.py --since 2026-01-01 --retention-days 0
    """
    diagnostics.configure(log_level, stream=sys.stderr, tag="export_historical")
    if log_level != "debug":  # its "first start: logging after id N" is the follower's news
        logging.getLogger("dead_drop_logger.record.pipeline").setLevel(logging.WARNING)
    db, log_dir = db.expanduser(), log_dir.expanduser()
    first = since.date() if since else None
    last = until.date() if until else None
    if first and last and first > last:
        raise click.BadParameter("--since is after --until", param_hint="--since")
    if not db.exists():
        fail(f"database {db} does not exist")
    stop = StopEvent()
    stop_on_signals(stop, log)
    try:  # before the log directory is made: a file that is no database leaves nothing
        _readable(db, stop)
    except SourceError as exc:
        fail(str(exc))
    try:
        done, low, top, already, outside = _export(
            db, log_dir, first, last, utc, retention_days, stop
        )
    except LogDirError as exc:
        fail(str(exc))
        return
    except TRANSIENT as exc:
        log.debug("export failed", exc_info=True)
        fail(f"{exc}; run it again to resume (nothing is written twice)")
        return
    if low is None:
        click.echo("no messages in that range: nothing to export")
        return
    click.echo(
        f"exported {done.lines} messages with ids {low}..{top} to {log_dir}"
        f" ({already} already there)"
    )
    if outside:
        click.echo(
            f"{outside} messages older than the {retention_days}-day retention"
            " were not written (retention would delete them); --retention-days 0 keeps them"
        )
    if stop.is_set():
        click.echo("interrupted before the end: run it again to finish", err=True)
        sys.exit(130)


def _export(
    db: Path,
    log_dir: Path,
    first: dt.date | None,
    last: dt.date | None,
    utc: bool,
    retention_days: int,
    stop: threading.Event,
) -> tuple[Progress, int | None, int, int, int]:
    """Returns what was written, the id range, how many of its messages were already in
    the log, and how many are not because of retention (this run's and earlier runs')."""
    source = Source(db, utc=utc)
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, SystemClock(), utc=utc))
    state = _retry(lambda: pipeline.prepare(database_existed=True), stop)
    bounds = history.id_range(db, first, last, utc=utc)
    if bounds is None:
        return Progress(), None, 0, 0, 0
    low, high = bounds
    top = min(high, state.position)
    # The state counts ids an earlier run left out for retention as handled: they are
    # not in the log. With --retention-days 0 this run writes them; otherwise they stay
    # out and the note about them is repeated.
    skipped = idranges.within(state.skipped, low, top)
    handled = idranges.within(state.logged, low, top)
    todo = idranges.gaps(
        handled if retention_days else idranges.subtract(handled, skipped), low, top
    )
    # Counting rows costs a pass over them: count only what is already logged (nothing,
    # on a first export), what was left out and, for the progress bar, what is to do.
    already = history.count_in(db, idranges.subtract(handled, skipped))
    left_out = history.count_in(db, skipped) if retention_days else 0
    total = Progress()
    shows: list[Callable[[int], None]] = []  # the progress bar, on a terminal

    def page(step: Progress) -> None:
        total.lines += step.lines
        total.last_id = step.last_id or total.last_id
        total.outside_retention += step.outside_retention
        for show in shows:
            show(step.lines)

    def run() -> Progress:
        return pipeline.backfill(
            low, high, should_stop=stop.is_set, on_page=page, retention_days=retention_days
        )

    try:
        if sys.stderr.isatty():
            length = history.count_in(db, todo)
            with click.progressbar(length=length, label="exporting", file=sys.stderr) as bar:
                shows.append(bar.update)
                _retry(run, stop)
        else:
            _retry(run, stop)
    finally:
        source.close()
    return total, low, top, already, left_out + total.outside_retention


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


if __name__ == "__main__":
    main()
