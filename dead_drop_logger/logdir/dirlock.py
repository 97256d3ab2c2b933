"""The log directory's writer lock, taken in turn: a live follower never starves.

Every writer holds an exclusive ``flock`` on ``.dead-drop-logger.lock`` for one batch
(see :mod:`.state`). A historical backfill takes it again the moment it lets go, so a
follower polling for it could wait seconds behind a long export (5.4 s measured behind
a 1.5M-row one), however short each hold was. Fairness comes from a second lock,
``.dead-drop-logger.queue``, a turnstile:

- to take the writer lock, first take the queue lock, then the writer lock, then let
  the queue go. Whoever holds the queue is next: a writer that has just let go of the
  writer lock cannot take it back before the one waiting, because it must pass the
  queue first;
- a writer holding the lock for several pages (the backfill) looks at the queue after
  each page and, when someone holds it (is waiting), ends its hold there.

So a follower waits at most for the page in hand. Both locks are polled without
blocking, so a holder that never lets go (a suspended export) is an error the caller
retries after ``patience`` seconds, rather than a hang that would miss a SIGTERM.
Correctness (exactly once) rests on the writer lock alone; the queue is only about
who goes next, so a process that skips it (an older version) is merely unfair, and a
waiter that cannot get the queue within ``QUEUE_PATIENCE`` (its holder suspended while
waiting its turn: Ctrl-Z) goes for the writer lock directly rather than wait on a
process that holds nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..files import open_private
from . import layout

LOCK_NAME = layout.LOCK_FILE
QUEUE_NAME = ".dead-drop-logger.queue"
PATIENCE = 2.0
QUEUE_PATIENCE = 0.5  # far above a page's hold: only a stopped waiter holds it longer
STEP = 0.002  # how often a waiter looks again (the lock is free within a page's time)


class LockTimeout(Exception):
    """The writer lock stayed taken for longer than any batch holds it."""


class DirLock:
    """The writer lock of one log directory and its queue."""

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / LOCK_NAME
        self.queue_path = log_dir / QUEUE_NAME

    @contextlib.contextmanager
    def held(self, patience: float = PATIENCE) -> Iterator[int]:
        """Hold the writer lock, having waited in turn; yields the locked file's
        descriptor (see :meth:`intact`). Raises LockTimeout."""
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            deadline = time.monotonic() + patience
            queue = open_private(self.queue_path, os.O_RDWR | os.O_CREAT)
            try:
                _wait_for(queue, min(deadline, time.monotonic() + QUEUE_PATIENCE))
                if not _wait_for(fd, deadline):
                    raise LockTimeout(
                        f"{self.path} has been held by another process for over"
                        f" {patience:g}s; a batch holds it for a fraction of a second, so"
                        " that process is stopped or stalled (or compressing a large day"
                        " file)"
                    )
            finally:
                os.close(queue)  # the next in line may go once this one holds the lock
            yield fd
        finally:
            os.close(fd)  # closing releases the flock

    def intact(self, fd: int) -> bool:
        """Whether the lock held through ``fd`` is still the log directory's: its file is
        still the one at the path (a holder that keeps the lock between batches checks
        that the directory was not deleted or replaced meanwhile, or a writer there
        would hold a lock of its own)."""
        try:
            here = os.lstat(self.path)
        except OSError:
            return False
        held = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def someone_waits(self) -> bool:
        """Whether another writer waits for the lock (it holds the queue)."""
        try:
            queue = open_private(self.queue_path, os.O_RDWR | os.O_CREAT)
        except OSError:
            return False
        try:
            fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(queue)
        return False


def _wait_for(fd: int, deadline: float) -> bool:
    """Take the ``flock`` on ``fd``, polling until ``deadline``; False if never free."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(STEP)


PRESENCE_NAME = ".dead-drop-logger.present"


class Presence:
    """Who works in a log directory that holds no message yet: every writer there holds
    a shared ``flock`` on ``.dead-drop-logger.present`` while the directory holds none
    (and lets go once it does: nothing of the logger's stays open in the log directory
    between batches, so a user's ``rm -r`` of it is never held up).

    A log directory that holds no message yet belongs to nobody, so another database may
    take it over (:mod:`..record.ownership`), but not from a logger still working there:
    its state would be taken from under it, and its next batch would take it back as a
    first start, past the rows that came meanwhile. Taking over needs the exclusive lock,
    free only when no other writer is present. Presence is taken and tested only under
    the writer lock, so nobody joins between the test and the takeover.
    """

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / PRESENCE_NAME
        self._fd: int | None = None

    def hold(self) -> None:
        """Be present (again); a no-op while present in the file at the path (a
        directory deleted and made again has a new one)."""
        if self._fd is not None:
            try:
                here = os.lstat(self.path)
                held = os.fstat(self._fd)
                if (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                    return
            except OSError:
                pass
            self.release()
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # an exclusive holder holds the writer lock too
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def others(self) -> bool:
        """Whether another writer is present. Ends this one's own presence first (the
        caller holds the writer lock and :meth:`hold` s it again)."""
        self.release()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False  # (not made here before: nobody was ever present)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases the flock
        return False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
