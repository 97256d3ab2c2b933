"""Reading the next page while the current one is written: a backlog at SQLite's speed.

A historical import is a loop of "read a page, append it, fsync it, save the state".
SQLite builds a page without the GIL, and the disk work does not need the CPU, so the
two can overlap: as soon as the statement of a full page has answered, the statement of
the next one (the rows after it, same bound and size) runs in a background thread on a
second read-only connection. The checks of a page (its UTF-8, in Python, holding the
GIL: a sixth of a backfill's CPU) run in the caller's thread, beside the next page's
statement, not after it in the thread reading ahead, which is the backfill's bound.
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

from .source import Answer, Page, Source

Key = tuple[int, int | None, int]


class Prefetcher:
    """``read`` as :meth:`Source.read`, with the next full page read ahead."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._ahead = Source(source.path, utc=source.utc, busy_timeout=source.busy_timeout)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[Key, Future[Answer]] | None = None
        self._lock = threading.Lock()

    def read(self, after: int, upto: int | None, limit: int) -> Page:
        key = (after, upto, limit)
        answer = self._take(key)
        if answer is None:
            answer = self.source.ask(after, upto, limit)
        if answer.count == limit and (upto is None or answer.last_id < upto):
            self._start((answer.last_id, upto, limit))
        return self.source.page(answer)  # (checked here, beside the next statement)

    def _take(self, key: Key) -> Answer | None:
        """The answer read ahead if it was read for ``key`` (always waits for it)."""
        if self._pending is None:
            return None
        wanted, future = self._pending
        self._pending = None
        try:
            answer = future.result()
        except Exception:  # the fresh read reports it, if it persists
            return None
        return answer if wanted == key else None

    def _start(self, key: Key) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="prefetch")
        self._pending = (key, self._executor.submit(self._read_ahead, key))

    def _read_ahead(self, key: Key) -> Answer:
        with self._lock:
            return self._ahead.ask(*key)

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
