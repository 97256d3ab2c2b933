"""The follow loop: wake when the database changes (or at the poll interval, the safety
net), hand new rows to the pipeline, survive trouble.

Waiting is :mod:`.watch`'s job: the loop waits on a Waker that a watcher rings when the
database's files change; with ``--no-watch``, or where no notification comes, it is the
plain timer.

Transient trouble (the database missing, locked, corrupt or replaced; a write failing)
never ends the loop: it is reported once, retried with a capped exponential backoff,
and retried at once when the database file changes under us. Only a stop request
(SIGTERM, SIGINT) ends it, after the batch in hand is committed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..clock import Clock, SystemClock, monotonic
from ..config import Settings
from ..crypt import agentkeys
from ..crypt.keys import mark_encrypted
from ..diagnostics import Reporter
from ..files import LogDirError, ensure_private_dir
from ..keep.housekeeping import Policy
from ..logdir.state import State, StateError
from ..signals import stop_on_signals
from . import history, sealed
from .heap import keep_batch_memory
from .pipeline import Pipeline, Progress
from .rotation import Rotator
from .source import Source, SourceError, SourceMissing, SourceNoTable
from .tables import TableFollower
from .watch import (
    CHANGE,
    RECHECK,
    Wake,
    Waker,
    WakingStopEvent,
    Watcher,
    database_files,
    watching_database,
)
from .writer import DayWriter, WriteError

log = logging.getLogger(__name__)


def make_writer(settings: Settings, clock: Clock) -> DayWriter:
    """The writer of ``settings``: sealed age segments with ``encrypt_to``, else plain
    day files."""
    if settings.encrypt_to:
        return sealed.SegmentWriter(
            settings.log_dir,
            clock,
            settings.encrypt_to,
            utc=settings.utc,
            compress_after=settings.compress_after,
        )
    return DayWriter(settings.log_dir, clock, utc=settings.utc, max_bytes=settings.max_bytes)


MAX_BACKOFF = 10.0
TABLES_PATIENCE = 5  # ticks the tables' read may fail before it is said (see _follow_tables)
TRANSIENT = (SourceError, WriteError, StateError, OSError)


class Follower:
    """Runs one logger in the foreground until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        watcher: Watcher | None = None,
    ) -> None:
        self.settings = settings
        self.watcher = watcher  # shared by many followers (rooms); None: one of its own
        self.clock = clock or SystemClock()
        self.waker = Waker()
        self.stop = stop or WakingStopEvent(self.waker)  # setting it ends a wait at once
        self.source = Source(settings.db, utc=settings.utc)
        self.writer = make_writer(settings, self.clock)
        self.pipeline = Pipeline(self.source, settings.log_dir, self.writer)
        # Called once, when every message committed from now on is sure to be logged
        # (the position fixed: a first start's is the database's last id then), or when
        # that waits on trouble it has said: ``start`` returns then, not before, so a
        # message sent just after it is never taken for one the database already held.
        self.on_following: Callable[[], None] | None = None
        if settings.encrypt_content_to_agents:  # each content sealed to its agents' keys
            named = dict(item.split("=", 1) for item in settings.agents_keys)
            sealer = agentkeys.ContentSealer(named, settings.escrow_to)
            self.pipeline.seal_content = sealer.seal_lines
        if settings.encrypt_to:  # the unsealed tail in memory, sealed at 1 MiB or 60 s
            self.pipeline.seal_limits = (sealed.SEAL_BYTES, settings.seal_interval)
        self.rotator = Rotator(
            settings.log_dir,
            self.clock,
            utc=settings.utc,
            policy=Policy(settings.retention_days, settings.keep_files, settings.compress_after),
            max_bytes=settings.max_bytes,
            parts=self.writer.parts,
            encrypted=bool(settings.encrypt_to),
        )
        self.reporter = Reporter(log)
        # The tasks and agents tables, beside the messages (see tables.py).
        self.tables = TableFollower(
            self.source,
            settings.log_dir,
            self.clock,
            utc=settings.utc,
            max_bytes=settings.max_bytes,
            let_go=self.pipeline.commits.release,
            holding=self.pipeline.store.lock_intact,
            files=make_writer(settings, self.clock) if settings.encrypt_to else None,
        )
        self._tables_trouble: str | None = None
        self._tables_failures = 0  # ticks in a row whose tables read failed
        self._woke: Wake | None = None  # why the last wait ended (None: no wait yet)
        self._failures = 0
        self._behind = False  # a catch-up failed: retry it even if nothing changed since
        self._found = 0  # lines the last catch-up logged
        self._wrote = False
        self._rotation_trouble: str | None = None
        self.finished = False  # set by a subclass whose database is gone for good
        # Longest wait between two ticks when nothing rings the waker: the poll interval,
        # unless something else checks for changes at that pace (the rooms' sweep).
        self.idle_wait = settings.poll_interval
        self._claimed = False  # the log directory is known to be this database's
        # The historical import's progress, (rows written, rows to write): a progress
        # bar on a terminal (set by the command line); None: not counted.
        self.import_progress: Callable[[int, int], None] | None = None
        self._plan_state: State | None = None  # as prepared: what the import plans from
        # The database is being made (it was missing, or is a room that just appeared):
        # until its first rows are read, its missing table is a normal event, said at
        # info, not a problem (the server makes the file, then its tables).
        self._newborn = False

    # -- signals -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        stop_on_signals(self.stop, log)  # its StopEvent also ends the waker's wait

    def request_stop(self) -> None:
        """End the loop after the batch in hand (a wait in progress ends at once)."""
        self.stop.set()
        self.waker.stop()

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Follow until stopped. Raises LogDirError when the log dir is unusable or
        another database's (ForeignDatabase)."""
        ensure_private_dir(self.settings.log_dir)
        if self.settings.encrypt_to:  # before any segment: see crypt.is_encrypted
            mark_encrypted(self.settings.log_dir)
        if self.settings.encrypt_content_to_agents:  # before any line: see agentkeys
            agentkeys.mark_content_sealed(self.settings.log_dir)
        keep_batch_memory()  # batch after batch in the same buffers (see heap)
        settings = self.settings
        if self.watcher is not None:
            db = settings.db.resolve()  # SQLite writes the -wal beside a symlink's target
            self.watcher.watch(db.parent, database_files(db), self.waker)
            try:
                self._follow()
            finally:
                self.watcher.unwatch(self.waker)
        else:
            # Here, not in __init__: the daemon closes every file descriptor it did not make.
            with watching_database(
                settings.db, self.waker, enabled=not settings.no_watch, poll=settings.poll_interval
            ):
                self._follow()
        self.pipeline.close()
        log.info("stopped")

    def _follow(self) -> None:
        existed = self._database_existed()  # a database born later is all new: from row 1
        self._newborn = not existed
        importing = self.settings.import_historical

        def prepare() -> None:
            nonlocal importing
            state = self.pipeline.prepare(database_existed=existed, import_historical=importing)
            importing = state.importing
            self._plan_state = state

        # Before any file is touched: a log directory of another database is refused
        # here (ForeignDatabase), with nothing written.
        if not self._retrying(self.pipeline.claim):
            return
        self._claimed = True
        self._rotate()  # today's file, the symlink and retention, even before the db exists

        def begin_tables() -> None:  # before the first start's position: see tables.py
            self.tables.begin(existed=existed and self.source.exists(), importing=importing)

        if not self._retrying(begin_tables):
            return
        if not self._retrying(prepare):
            return
        self.report_following()
        log.info(
            "following %s into %s every %ss",
            self.settings.db,
            self.settings.log_dir,
            self.settings.poll_interval,
        )
        if importing and not self._retrying(self._import_history):
            return
        if not self.source.exists():  # worded as SourceMissing is: the Reporter says it once
            self.reporter.problem(f"database {self.settings.db} does not exist; waiting for it")
        try:
            while not self.stop.is_set() and not self.finished:
                started = monotonic()
                self._retrying(self._tick, once=True)
                if not self._keep_holding():
                    self._let_go()
                self._rotate()
                if not self.stop.is_set() and not self.finished and not self.reporter.in_trouble:
                    # A tick starts every poll interval, not an interval after the last
                    # one ended (a batch's own time does not add to the latency), and
                    # never sleeps past midnight.
                    wait = max(0.0, self.idle_wait - (monotonic() - started))
                    health = self.tables.wait_time()  # an agent turns stale or dead then
                    if health is not None:
                        wait = min(wait, health)
                    seal = self.pipeline.seal_wait()
                    if seal is not None:
                        wait = min(wait, seal)
                    self._woke = self.waker.wait(self.rotator.wait_time(wait))
        finally:
            self._seal_at_stop()
            self._let_go()

    def report_following(self) -> None:
        """Call ``on_following``, once."""
        ready, self.on_following = self.on_following, None
        if ready is not None:
            ready()

    def _seal_at_stop(self) -> None:
        """Seal the unsealed tail as the loop ends; if that fails, it is read again from
        the database at the next start (the state's position is before it)."""
        if self.pipeline.unsealed is None:
            return
        try:
            self.pipeline.seal()
        except TRANSIENT as exc:
            log.warning("could not seal the last segment (%s); it is logged at the next start", exc)

    def _database_existed(self) -> bool:
        """Whether the database is there at start (else all of it will be new)."""
        return self.source.exists()

    def _import_history(self) -> None:
        days = self.settings.retention_days
        progress = self.import_progress
        state = self._plan_state
        rows = 0
        if state is not None and state.position:
            todo = history.plan(
                self.settings.db,
                state,
                1,
                state.position,
                retention_days=days,
                utc=self.settings.utc,
                clock=self.clock,
                count=progress is not None,
                keep_files=self.settings.keep_files,
                log_dir=self.settings.log_dir,
            )
            rows = todo.rows
            for note in todo.notes():  # said before, not after
                log.warning("historical import: %s", note)
        written = 0

        def page(step: Progress) -> None:
            nonlocal written
            written += step.lines
            if progress is not None:
                progress(written, rows)

        if progress is not None:
            progress(0, rows)
        done = self.pipeline.backfill(
            should_stop=self.stop.is_set, retention_days=days, on_page=page
        )
        log.info("historical import: %d messages logged", done.lines)
        if done.lines:
            self.rotator.policies_now()  # the old days it wrote: compressed now, not at midnight
        if done.outside_retention:
            log.info(
                "historical import: %d messages older than the %d-day retention not written",
                done.outside_retention,
                days,
            )

    def _tick(self) -> None:
        if self.pipeline.finish_old_file():  # the old file's last messages, before the new
            self._wrote = True
        # ``changed()`` consumes the change: after a failed catch-up it would say
        # "nothing new" and the failed batch would wait for the next message. A change
        # rung while the server writes flat out (the last batch found lines) is not
        # asked about: the page read answers the same question, and the statement
        # cost a read transaction a batch (a stale answer later costs one empty read).
        busy = self._found > 0 and self._woke is not None and self._woke.reason == CHANGE
        self._found = 0
        # A restore that wrote a message file since the last batch (see copies): the
        # directory is checked now, not at the server's next message.
        if busy or self.source.changed() or self._behind or self.pipeline.written_by_another():
            self._behind = True
            # Watching, the transaction is held for the next batch (group commit): the
            # loop lets it go unless it is sure to be back within a gap.
            hold = self.waker.watching
            done = self.pipeline.catch_up(should_stop=self.stop.is_set, hold=hold)
            self._behind = False
            self._newborn = False  # its table is there: trouble from now on is trouble
            self._found = done.lines
            self.waker.pace(done.lines)
            if done.lines:
                self._wrote = True
                log.debug("logged %d messages up to id %d", done.lines, done.last_id)
                if self.waker.timer_found_work(self._woke):
                    log.info(
                        "no change notifications arrive for %s; polling only, every %ss",
                        self.settings.db,
                        self.settings.poll_interval,
                    )
        if self.pipeline.seal_due():  # encrypted: the tail's age, midnight (size: in a batch)
            self.pipeline.seal()  # (a failure fails the tick: retried, said once)
        self._follow_tables()

    def _follow_tables(self) -> None:
        """Record what changed in the tasks and agents tables (nothing is read unless
        the database changed, or an agent's health is due to change). Trouble there is
        said once and retried at the next tick, without holding back the messages."""
        try:
            self.tables.tick()
        except TRANSIENT as exc:
            message = f"tasks and agents: {_describe(exc)}; retrying"
            self._tables_failures += 1
            # The database's own trouble (gone, busy, unreadable) is the messages'
            # to say, at their next tick: said here only if it lasts while they do not.
            if isinstance(exc, SourceError) and self._tables_failures < TABLES_PATIENCE:
                log.debug("%s", message)
            elif message != self._tables_trouble:
                log.warning("%s", message)
                self._tables_trouble = message
        else:
            if self._tables_trouble is not None:
                log.info("tasks and agents: recovered")
            self._tables_trouble = None
            self._tables_failures = 0

    def _keep_holding(self) -> bool:
        """Whether to keep the pipeline's transaction over the coming wait (group
        commit): only while the server keeps the loop busy and change notifications
        arrive, so the next tick comes within one gap (a change's, or the recheck that
        :meth:`.Waker.pace` set after the rows this tick found)."""
        return (
            self._found > 0
            and self._woke is not None
            and self._woke.reason in (CHANGE, RECHECK)
            and not self.stop.is_set()
            and not self.finished
        )

    def _let_go(self) -> None:
        """End a held transaction, recording its last batch as logged. A failure is
        reported; the disk then says that batch is pending, so it is read again."""
        try:
            self.pipeline.commits.release()
        except TRANSIENT as exc:
            self.reporter.problem(f"{_describe(exc)}; retrying")
            self._behind = True  # its lines were cut back: read them again

    def _rotate(self) -> None:
        """The date-driven file work (see Rotator); a failure is reported once, retried."""
        if not self._claimed:  # the log directory may be another database's: hands off
            return
        wrote, self._wrote = self._wrote, False
        try:
            # The policies take the writer lock: a transaction held here ends first.
            self.rotator.tick(wrote=wrote, before_policies=self._let_go)
        except (OSError, StateError) as exc:
            message = f"rotation: {_describe(exc)}; retrying"
            if message != self._rotation_trouble:
                log.warning("%s", message)
            self._rotation_trouble = message
        else:
            if self._rotation_trouble is not None:
                log.info("rotation: recovered")
            self._rotation_trouble = None

    def _retrying(self, action: Callable[[], object], *, once: bool = False) -> bool:
        """Run ``action`` until it succeeds (or once), backing off on transient errors.

        Returns False when a stop was requested before it succeeded.
        """
        while not self.stop.is_set():
            newborn = self._newborn  # (the action clears it once the table is read)
            try:
                action()
            except SourceMissing as exc:
                self.reporter.problem(f"{exc}; waiting for it")
                self._newborn = True  # whoever makes it again makes it as the server does
                source_side = True
            except SourceNoTable:
                if self._newborn:  # being made: a normal event
                    self.reporter.problem(
                        f"database {self.settings.db} is being created (no messages table"
                        " yet); waiting",
                        level=logging.INFO,
                    )
                else:
                    self.reporter.problem(
                        f"database {self.settings.db} has no messages table; retrying"
                    )
                source_side = True
            except TRANSIENT as exc:
                self.reporter.problem(f"{_describe(exc)}; retrying")
                source_side = isinstance(exc, SourceError)
            else:
                if self.reporter.in_trouble:
                    self.reporter.resolved(
                        f"database {self.settings.db} is ready; logging it"
                        if newborn
                        else "recovered; logging again"
                    )
                self._failures = 0
                return True
            self.report_following()  # running, in a trouble it said: start need not wait it out
            self._backoff(on_change=source_side)
            if once:
                return False
        return False

    def _backoff(self, *, on_change: bool) -> None:
        """Wait before retrying: doubling, capped, cut short when the database file is
        replaced or (``on_change``: the trouble is the database's) any of its files
        changes. A write failing (disk full) is not retried at every commit."""
        self._let_go()  # (a hold kept after a busy tick: others must not wait it out)
        self._failures += 1
        delay = min(self.settings.poll_interval * 2 ** min(self._failures, 8), MAX_BACKOFF)
        delay = max(delay, min(self.settings.poll_interval, 0.5))
        log.debug("retry %d in %.2fs", self._failures, delay)
        before = signature(self.settings.db)
        waited = 0.0
        step = min(self.settings.poll_interval, 0.5)
        while waited < delay and not self.stop.is_set():
            woke = self.waker.wait(step)
            waited += step
            self._rotate()  # midnight does not wait for the database to come back
            if (on_change and woke.reason == CHANGE) or signature(self.settings.db) != before:
                return


def signature(path: Path) -> tuple[int, int, int, int] | None:
    """What a ``stat`` says of a file's identity and last change (None: not there)."""
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
