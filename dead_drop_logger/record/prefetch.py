"""Reading the next page while the current one is written: a backlog at SQLite's speed.

A historical import is a loop of "read a page, append it, fsync it, save the state".
SQLite builds a page without the GIL, and the disk work does not need the CPU, so the
two can overlap: right after a full page is read, the next one (the rows after it,
same bound and size) is read in a background thread on a second read-only connection.
(The follower does not read ahead: its reads stay short and apart, see pipeline.py.)

It changes nothing about what is written: the pipeline still decides under its lock,
from the state on disk, which rows it wants, and a prefetched page is used only when
it was read with exactly those arguments; otherwise it is dropped and read afresh. A
prefetched page is a snapshot a few milliseconds older than a fresh read would be,
which is no different from the read itself happening a few milliseconds earlier.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from .source import Page, Source

Key = tuple[int, int | None, int]


class Prefetcher:
    """``read`` as :meth:`Source.read`, with the next full page read ahead."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._ahead = Source(source.path, utc=source.utc, busy_timeout=source.busy_timeout)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[Key, Future[Page]] | None = None
        self._lock = threading.Lock()

    def read(self, after: int, upto: int | None, limit: int) -> Page:
        key = (after, upto, limit)
        page = self._take(key)
        if page is None:
            page = self.source.read(after, upto, limit)
        if len(page) == limit and (upto is None or page.last_id < upto):
            self._start((page.last_id, upto, limit))
        return page

    def _take(self, key: Key) -> Page | None:
        """The prefetched page if it was read for ``key`` (always waits for it to end)."""
        if self._pending is None:
            return None
        wanted, future = self._pending
        self._pending = None
        try:
            page = future.result()
        except Exception:  # the fresh read reports it, if it persists
            return None
        return page if wanted == key else None

    def _start(self, key: Key) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="prefetch")
        self._pending = (key, self._executor.submit(self._read_ahead, key))

    def _read_ahead(self, key: Key) -> Page:
        with self._lock:
            return self._ahead.read(*key)

    def close(self) -> None:
        """Drop any page read ahead, stop the thread and close the second connection."""
        if self._pending is not None:
            self._pending[1].cancel()
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            self._ahead.close()
