"""Waking a loop the moment a watched file changes, with its timer as the safety net.

Why it looks like this:
- A loop waits on a :class:`Waker` instead of ``stop.wait(timeout)``. The wait ends on a
  stop request, on a relevant change, or at the timeout. Nobody rings a bare Waker, so
  without a watcher it *is* the polling loop, unchanged: the timer never goes away,
  and wherever notifications do not come (network filesystems, some container bind
  mounts, a watcher that failed to start) the logger still logs at the poll interval.
- A burst coalesces: however many events arrive, a waiting loop wakes once, and at most
  once per ``gap`` (the leading edge at once, so a lone message is logged at once; a
  writer going flat out gets a batch every ``gap``, never a wake-up per row). The loop
  says how much its last wake-up found (:meth:`Waker.pace`): the gap widens with the
  batch, to ``BUSY_GAP`` at ``BUSY_LINES``, so a flat-out writer gets batches as big
  as polling every 50 ms gives, and each batch's fsyncs are spread over as many rows.
- Until a change turns out to hold something, the loop is woken a few more times
  ("recheck": 2, 3, 5 ... 200 ms after it, each a ``stat`` and ``PRAGMA
  data_version``): the event comes with the WAL write, but the commit becomes visible
  to readers only after the writer's fsync of the WAL (a few ms, more on a busy disk)
  and its update of the ``-shm`` index, which is mapped memory and raises no event of
  its own. Once a wake-up found rows, one more recheck a gap later catches a commit
  whose event came with theirs; rechecks never come closer than that to a batch.
- One :class:`Watcher` is one inotify instance for any number of directories and
  Wakers (a rooms directory and many databases in one process: one thread reads the
  events and rings the Wakers). Following one database (the common case), there is no
  thread: the loop's own wait reads the events (:meth:`Watcher.pump`: ``poll()`` on the
  inotify fd and a pipe that :meth:`Waker.stop` writes to, so a stop, even from a
  signal handler, ends the wait at once). No second thread to wake, no hand-over
  between two threads for every batch. Inside the gap it does not even look: it sleeps
  on the pipe alone until the gap's end, and the events pile up in the kernel (which
  merges repeats) until then, so a writer flat out costs one read a batch. It
  filters by name, so only the files a subscriber names wake it: the logger's own
  writes (its log directory, state, lock, its daemon log beside the database) never do.
  A watched directory that is missing, deleted or moved away is watched again as soon
  as it is there (retried every ``retry`` seconds), and its subscribers are woken then.
- inotify through ``inotify_simple`` (one small pure-Python module over ctypes: ~4 ms to
  import after the rest of the logger, no thread or process of its own) on Linux;
  elsewhere (macOS) the logger polls only, and says so once.

Test hook (only the test suite sets it): ``DEAD_DROP_TEST_WATCHER=fail`` makes the
watcher fail to start; ``DEAD_DROP_TEST_WATCHER=deaf:DIR`` watches DIR (where nothing
happens) instead of the database's directory.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..signals import StopEvent

log = logging.getLogger(__name__)

STOP, CHANGE, RECHECK, TIMEOUT = "stop", "change", "recheck", "timeout"
GAP = 0.02  # at most one change wake-up per GAP seconds
# After a change: rechecks growing by half each time, so a commit that becomes visible
# t ms after its event is logged by about 1.5 t (12 cheap ticks, to 200 ms).
RECHECKS = (0.002, 0.003, 0.005, 0.008, 0.012, 0.018, 0.027, 0.04, 0.06, 0.09, 0.135, 0.2)
BUSY_GAP = 0.05  # ... or per BUSY_GAP once a wake-up found BUSY_LINES or more
BUSY_LINES = 200
# A watcher reads events at most once per SETTLE s; its thread, also once per its
# Wakers' gap when all of them wait longer than that (a writer flat out: once per
# BUSY_GAP). A loop reading them itself never does inside its gap.
SETTLE = 0.025
TEST_HOOK = "DEAD_DROP_TEST_WATCHER"

Match = Callable[[str, bool], bool]
"""Whether an event on ``name`` (a directory when the flag is set) concerns a subscriber."""


class Pump(Protocol):
    """What a Waker's own wait reads its watcher's events through (no thread)."""

    def pump(self, timeout: float, *, events: bool) -> None:
        """Wait up to ``timeout`` s for a :meth:`poke` or (``events``) an event, and
        ring the Wakers the events concern."""

    def poke(self) -> None:
        """End a :meth:`pump` in progress at once (safe from a signal handler)."""


@dataclass(frozen=True)
class Wake:
    """Why a wait ended, and (for a change) the names that changed."""

    reason: str
    names: tuple[str, ...] = ()


class Waker:
    """What a loop waits on: ends on :meth:`stop`, on a change rung by a watcher, or at
    the timeout. ``counts`` tallies wake-ups by reason (each is also a debug line)."""

    def __init__(
        self,
        *,
        gap: float = GAP,
        busy_gap: float = BUSY_GAP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet_gap = self.gap = gap
        self.busy_gap = busy_gap
        self._clock = clock
        # An RLock: a signal handler may stop() while this thread is inside wait().
        self._cond = threading.Condition(threading.RLock())
        self._stopped = False
        self._changed: dict[str, None] = {}  # names in the order they changed
        self._last_change = -float("inf")
        self._rechecks: Iterator[float] = iter(())  # offsets from the last change to come
        self._recheck_at: float | None = None
        self.counts: Counter[str] = Counter()
        self._last = TIMEOUT  # the reason of the last wake-up
        self.watching = False  # a watcher delivers to this Waker
        # A watcher without a thread, read by this Waker's own wait (None: a watcher's
        # thread rings it, or nothing does).
        self.pump: Pump | None = None
        self._timer_work = 0  # timer wake-ups that found new data, while no change came

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        pump = self.pump
        if pump is not None:  # a wait blocked in the pump's poll() ends at once
            pump.poke()

    def ring(self, name: str) -> None:
        """A relevant change (called by a watcher: its thread, or its pump inside
        :meth:`wait`)."""
        with self._cond:
            first = not self._changed
            self._changed[name] = None
            # A waiter wakes by itself at the end of the gap, its turn for a change (see
            # wait): only the first change after that must wake it.
            if first and self._clock() >= self._last_change + self.gap:
                self._cond.notify_all()

    def wait(self, timeout: float) -> Wake:
        end = self._clock() + max(0.0, timeout)
        looked = False  # (a pump) the events were read since the last sleep in the gap
        while True:
            with self._cond:
                now = self._clock()
                pump = self.pump
                out_of_gap = now >= self._last_change + self.gap
                if pump is not None and out_of_gap and not looked:
                    # First what came while the loop worked or slept out its gap: a
                    # change outranks the recheck or timeout due now.
                    wait, events = 0.0, True
                else:
                    due = self._due(now, end)
                    if isinstance(due, Wake):
                        wake = due
                        break
                    if pump is None:
                        self._cond.wait(due - now)
                        continue
                    # Inside the gap the events are not read: they pile up in the
                    # kernel (which merges repeats) until its end, when one read takes
                    # them all.
                    wait, events = due - now, out_of_gap
            pump.pump(wait, events=events)  # not under the lock: stop() may poke it
            looked = events
        self.counts[wake.reason] += 1
        self._last = wake.reason
        if log.isEnabledFor(logging.DEBUG):  # (the names are not joined for nothing)
            log.debug(
                "woke: %s%s", wake.reason, f" ({', '.join(wake.names)})" if wake.names else ""
            )
        return wake

    def _due(self, now: float, end: float) -> Wake | float:
        """The wake-up due at ``now`` (its state updated), or until when to wait."""
        if self._stopped:
            return Wake(STOP)
        ready = self._last_change + self.gap
        if self._changed and now >= ready:
            wake = Wake(CHANGE, tuple(self._changed))
            self._changed.clear()
            self._last_change = now
            self._rechecks = iter(RECHECKS)
            self._recheck_at = now + next(self._rechecks)
            return wake
        # A recheck is moot while a change waits its turn: that wakes anyway.
        recheck = None if self._changed else self._recheck_at
        if recheck is not None and now >= recheck:
            # The next one still ahead (a slow tick may have passed some).
            ahead = (t for t in self._rechecks if self._last_change + t > now)
            offset = next(ahead, None)
            self._recheck_at = None if offset is None else self._last_change + offset
            return Wake(RECHECK)
        if now >= end:
            return Wake(TIMEOUT)
        until = end
        if self._changed or now < ready:  # (a change rung in the gap rings no one)
            until = min(until, ready)
        if recheck is not None:
            until = min(until, recheck)
        return until

    @property
    def rechecking(self) -> bool:
        """Whether a quick recheck after the last change is still to come."""
        with self._cond:
            return self._recheck_at is not None and not self._changed

    def pace(self, lines: int) -> None:
        """How much the last wake-up found: a bigger batch widens the gap, and rows found
        end the quick rechecks (see above)."""
        widen = (self.busy_gap - self.quiet_gap) * min(lines, BUSY_LINES) / BUSY_LINES
        self.gap = self.quiet_gap + widen
        if lines and self._last in (CHANGE, RECHECK):  # not after the timer's: no event
            with self._cond:
                self._rechecks = iter(())
                self._recheck_at = self._clock() + self.gap

    def timer_found_work(self, last: Wake | None) -> bool:
        """Note that a tick after ``last`` found new data. True, once, when notifications
        are evidently not arriving: twice the timer found data and no change ever came."""
        if not self.watching or self.counts[CHANGE] or last is None or last.reason != TIMEOUT:
            return False
        self._timer_work += 1
        return self._timer_work == 2


class WakingStopEvent(StopEvent):
    """A stop request (a :class:`.signals.StopEvent`, safe to set from a signal handler)
    that also ends ``waker``'s wait at once, whoever sets it: a signal handler, or
    another thread running the loop in process."""

    def __init__(self, waker: Waker) -> None:
        super().__init__()
        self._waker = waker

    def set(self) -> None:
        super().set()
        self._waker.stop()


@dataclass
class _Subscription:
    directory: Path
    match: Match
    waker: Waker
    prefix: str = ""  # rung as prefix + name: one Waker can tell its directories apart


@dataclass
class _Directory:
    path: Path
    subscriptions: list[_Subscription] = field(default_factory=list)
    wd: int | None = None  # None: not watched (missing); retried


class WatcherUnavailable(Exception):
    """No change notifications here (platform, library, kernel limits, test hook)."""


class Watcher:
    """One inotify instance and one thread, for any number of directories and Wakers;
    or (``thread=False``) no thread: the one loop waiting on its Wakers reads the
    events itself, through :meth:`pump`."""

    def __init__(self, *, retry: float = 1.0, settle: float = SETTLE, thread: bool = True) -> None:
        if os.environ.get(TEST_HOOK) == "fail":
            raise WatcherUnavailable(f"{TEST_HOOK}=fail (test hook)")
        if not sys.platform.startswith("linux"):
            raise WatcherUnavailable(f"no inotify on {sys.platform}")
        try:
            import inotify_simple
        except ImportError:  # pragma: no cover - a dependency on Linux
            raise WatcherUnavailable("inotify_simple is not installed") from None
        flags = inotify_simple.flags
        self._mask = (
            flags.MODIFY
            | flags.ATTRIB
            | flags.CREATE
            | flags.DELETE
            | flags.MOVED_FROM
            | flags.MOVED_TO
            | flags.DELETE_SELF
            | flags.MOVE_SELF
        )
        self._flags = flags
        try:
            self._inotify: Any = inotify_simple.INotify(nonblocking=True)
        except OSError as exc:
            raise WatcherUnavailable(f"inotify: {exc.strerror or exc}") from None
        self.retry = retry
        self.settle = settle
        self._lock = threading.Lock()
        self._dirs: dict[Path, _Directory] = {}
        self._by_wd: dict[int, _Directory] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False
        self._poller = select.poll()  # events or a poke
        self._poller.register(self._inotify.fileno(), select.POLLIN)
        self._poller.register(self._wake_r, select.POLLIN)
        self._poked = select.poll()  # only the pipe: a pause that a poke ends
        self._poked.register(self._wake_r, select.POLLIN)
        self._settled = -float("inf")  # (pump) when the events may be read again
        self._thread: threading.Thread | None = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
            self._thread.start()

    # -- subscribing -------------------------------------------------------------------

    def watch(self, directory: Path, match: Match, waker: Waker, *, prefix: str = "") -> None:
        """Ring ``waker`` when an entry of ``directory`` that ``match`` accepts is
        modified, created, deleted or renamed, and when the directory itself appears
        (as ``"."``). Names are rung as ``prefix + name``, so one Waker shared by many
        directories (rooms) learns which changed."""
        directory = directory.absolute()
        with self._lock:
            entry = self._dirs.get(directory)
            if entry is None:
                entry = self._dirs[directory] = _Directory(directory)
            entry.subscriptions.append(_Subscription(directory, match, waker, prefix))
            if entry.wd is None:
                self._add(entry)
        waker.watching = True
        if self._thread is None:
            waker.pump = self  # its wait reads the events
        else:
            self.poke()  # the thread recomputes whether it must retry missing directories

    def unwatch(self, waker: Waker) -> None:
        """Stop ringing ``waker`` (a room released); a directory nobody watches any more
        is no longer watched."""
        with self._lock:
            for path, entry in list(self._dirs.items()):
                entry.subscriptions = [s for s in entry.subscriptions if s.waker is not waker]
                if not entry.subscriptions:
                    self._forget(entry)
                    del self._dirs[path]
        self._release(waker)

    def _release(self, waker: Waker) -> None:
        waker.watching = False
        if waker.pump is self:
            waker.pump = None  # it waits on its timer alone

    def _add(self, entry: _Directory) -> bool:
        """Start watching ``entry`` (the lock held). False while it cannot be watched."""
        try:
            wd = self._inotify.add_watch(entry.path, self._mask | self._flags.ONLYDIR)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):  # not there (yet): retried
                log.debug("cannot watch %s: %s; retrying", entry.path, exc.strerror)
            return False
        entry.wd = wd
        self._by_wd[wd] = entry
        return True

    # -- reading the events: the thread, or the waiting loop (pump) -------------------

    def _run(self) -> None:
        try:
            while not self._closed:
                if self._step(None, events=True):
                    # Coalesce: let a burst pile up (the kernel merges repeats) before
                    # the next read, so a writer flat out costs a bounded number of
                    # wake-ups of this thread, not one per write.
                    self._poked.poll(self._settle() * 1000)
        except Exception as exc:  # never kill the logger: it still polls
            self._fail(exc)

    def pump(self, timeout: float, *, events: bool) -> None:
        """The thread's work, done by the waiting loop (``thread=False``): wait up to
        ``timeout`` s for a poke, or (``events``) for an event, and ring the Wakers it
        concerns. Events are read at most once per ``settle`` s, as the thread does."""
        try:
            now = time.monotonic()
            if events and now < self._settled:  # (a burst of other files' events)
                events, timeout = False, min(timeout, self._settled - now)
            if self._step(timeout, events=events):
                self._settled = time.monotonic() + self.settle
        except Exception as exc:  # never kill the logger: it still polls
            self._fail(exc)

    def _step(self, timeout: float | None, *, events: bool) -> bool:
        """Wait up to ``timeout`` s (None: until something happens) for a poke or
        (``events``) an event, retry the missing directories and deliver the events.
        True when the events were read."""
        with self._lock:
            missing = any(d.wd is None for d in self._dirs.values())
        if missing:
            timeout = self.retry if timeout is None else min(timeout, self.retry)
        poller = self._poller if events else self._poked
        wait = None if timeout is None else max(0.0, timeout) * 1000
        ready = {fd for fd, _ in poller.poll(wait)}
        if self._closed:
            return False
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 512)
        if missing:
            self._retry_missing()
        if self._inotify.fileno() not in ready:
            return False
        self._dispatch(self._inotify.read(timeout=0))
        return True

    def _fail(self, exc: Exception) -> None:
        log.warning("change notifications stopped (%s); polling only", exc)
        for waker in self._wakers():
            self._release(waker)

    def _wakers(self) -> list[Waker]:
        with self._lock:
            subscribers = (s.waker for d in self._dirs.values() for s in d.subscriptions)
            return list({id(waker): waker for waker in subscribers}.values())

    def _settle(self) -> float:
        """How long to let a burst pile up: ``settle``, or longer while every Waker
        takes a change no oftener anyway (under a writer flat out, one read a batch:
        a change read in between would only be added to the one already waiting)."""
        with self._lock:
            gaps = [s.waker.gap for d in self._dirs.values() for s in d.subscriptions]
        return max(self.settle, min(gaps, default=self.settle))

    def _retry_missing(self) -> None:
        with self._lock:
            appeared = [d for d in self._dirs.values() if d.wd is None and self._add(d)]
        for entry in appeared:
            for sub in entry.subscriptions:
                sub.waker.ring(sub.prefix + ".")  # it appeared: what it holds may be new

    def _dispatch(self, events: list[Any]) -> None:
        rings: dict[tuple[int, str], Waker] = {}  # each (waker, name) once per read

        def ring(sub: _Subscription, name: str) -> None:
            rings[(id(sub.waker), sub.prefix + name)] = sub.waker

        flags = self._flags
        with self._lock:
            for event in events:
                if event.mask & flags.Q_OVERFLOW:  # events were lost: wake everyone
                    for each in self._dirs.values():
                        for sub in each.subscriptions:
                            ring(sub, "*")
                    continue
                entry = self._by_wd.get(event.wd)
                if entry is None or entry.wd != event.wd:
                    continue
                if event.mask & (flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED):
                    self._forget(entry)  # watched again once a directory is there
                    for sub in entry.subscriptions:
                        ring(sub, ".")
                    continue
                is_dir = bool(event.mask & flags.ISDIR)
                for sub in entry.subscriptions:
                    if sub.match(event.name, is_dir):
                        ring(sub, event.name)
        for (_, name), waker in rings.items():
            waker.ring(name)

    def _forget(self, entry: _Directory) -> None:
        if entry.wd is None:
            return
        self._by_wd.pop(entry.wd, None)
        with contextlib.suppress(OSError):
            self._inotify.rm_watch(entry.wd)  # a moved directory is still watched: stop
        entry.wd = None

    def poke(self) -> None:
        """End a wait for events at once (the thread's or a :meth:`pump`)."""
        if not self._closed:  # (closed: the pipe's descriptor may be another file's now)
            self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # (a full pipe is poked already)
            os.write(self._wake_w, b"x")

    # -- stopping ----------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (at once: it is woken through a pipe) and free the inotify fd.
        Without a thread, its Wakers wait on their timers alone from now on."""
        if self._closed:
            return
        self._closed = True
        for waker in self._wakers():
            self._release(waker)
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return
        self._inotify.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def database_files(db: Path) -> Match:
    """The database file and its ``-wal`` and ``-journal`` companions (not ``-shm``:
    readers write it too)."""
    names = {db.name, f"{db.name}-wal", f"{db.name}-journal"}
    return lambda name, is_dir: name in names


@contextlib.contextmanager
def watching_database(db: Path, waker: Waker, *, enabled: bool, poll: float) -> Iterator[None]:
    """Ring ``waker`` when the database changes, for the block's duration; when that is
    impossible, say once that the logger polls only. Create it after daemonizing: the
    daemon closes every file descriptor it did not create."""
    if not enabled:
        yield
        return
    db = db.resolve()  # SQLite follows a symlink: the -wal is written beside the target
    directory = db.parent
    hook = os.environ.get(TEST_HOOK, "")
    if hook.startswith("deaf:"):
        directory = Path(hook.removeprefix("deaf:"))
    try:
        watcher = Watcher(retry=max(poll, 0.05), thread=False)  # the loop's wait reads it
    except WatcherUnavailable as exc:
        log.info("no change notifications (%s); polling only, every %ss", exc, poll)
        yield
        return
    try:
        watcher.watch(directory, database_files(db), waker)
        yield
    finally:
        watcher.close()


__all__ = [
    "CHANGE",
    "RECHECK",
    "STOP",
    "TIMEOUT",
    "Pump",
    "Wake",
    "Waker",
    "WakingStopEvent",
    "Watcher",
    "WatcherUnavailable",
    "database_files",
    "watching_database",
]
