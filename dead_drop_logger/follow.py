"""The follow loop: poll the database, hand new rows to the pipeline, survive trouble.

Transient trouble (the database missing, locked, corrupt or replaced; a write failing)
never ends the loop: it is reported once, retried with a capped exponential backoff,
and retried at once when the database file changes under us. Only a stop request
(SIGTERM, SIGINT) ends it, after the batch in hand is committed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from .clock import Clock, SystemClock, monotonic
from .config import Settings
from .diagnostics import Reporter
from .files import LogDirError, ensure_private_dir
from .pipeline import Pipeline
from .source import Source, SourceError, SourceMissing
from .state import StateError
from .writer import DayWriter, WriteError

log = logging.getLogger(__name__)

MAX_BACKOFF = 10.0
TRANSIENT = (SourceError, WriteError, StateError, OSError)


class Follower:
    """Runs one logger in the foreground until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self.source = Source(settings.db, utc=settings.utc)
        self.writer = DayWriter(settings.log_dir, self.clock, utc=settings.utc)
        self.pipeline = Pipeline(self.source, settings.log_dir, self.writer)
        self.reporter = Reporter(log)
        self._failures = 0

    # -- signals -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s; finishing the batch in hand", signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Follow until stopped. Raises LogDirError when the log dir is unusable."""
        ensure_private_dir(self.settings.log_dir)
        existed = self.source.exists()
        if not existed:
            log.warning("database %s does not exist yet; waiting for it", self.settings.db)
        log.info(
            "following %s into %s every %ss",
            self.settings.db,
            self.settings.log_dir,
            self.settings.poll_interval,
        )
        if not self._retrying(lambda: self.pipeline.prepare(database_existed=existed)):
            return
        if self.settings.import_historical and not self._retrying(self._import_history):
            return
        while not self.stop.is_set():
            started = monotonic()
            self._retrying(self._tick, once=True)
            if not self.stop.is_set() and not self.reporter.in_trouble:
                # A tick starts every poll interval, not an interval after the last one
                # ended: a batch's own time does not add to the latency and the lag.
                self.stop.wait(max(0.0, self.settings.poll_interval - (monotonic() - started)))
        self.pipeline.close()
        log.info("stopped")

    def _import_history(self) -> None:
        done = self.pipeline.backfill(should_stop=self.stop.is_set)
        log.info("historical import: %d messages logged", done.lines)

    def _tick(self) -> None:
        if self.source.changed():
            done = self.pipeline.catch_up(should_stop=self.stop.is_set)
            if done.lines:
                log.debug("logged %d messages up to id %d", done.lines, done.last_id)

    def _retrying(self, action: Callable[[], object], *, once: bool = False) -> bool:
        """Run ``action`` until it succeeds (or once), backing off on transient errors.

        Returns False when a stop was requested before it succeeded.
        """
        while not self.stop.is_set():
            try:
                action()
            except SourceMissing as exc:
                self.reporter.problem(f"{exc}; waiting for it")
            except TRANSIENT as exc:
                self.reporter.problem(f"{_describe(exc)}; retrying")
            else:
                if self.reporter.in_trouble:
                    self.reporter.resolved("recovered; logging again")
                self._failures = 0
                return True
            self._backoff()
            if once:
                return False
        return False

    def _backoff(self) -> None:
        """Wait before retrying: doubling, capped, cut short when the database changes."""
        self._failures += 1
        delay = min(self.settings.poll_interval * 2 ** min(self._failures, 8), MAX_BACKOFF)
        delay = max(delay, min(self.settings.poll_interval, 0.5))
        before = _signature(self.settings.db)
        waited = 0.0
        step = min(self.settings.poll_interval, 0.5)
        while waited < delay and not self.stop.is_set():
            self.stop.wait(step)
            waited += step
            if _signature(self.settings.db) != before:
                return


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


__all__ = ["Follower", "LogDirError"]
