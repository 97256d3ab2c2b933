"""Reading the next page while the current one is written: a backlog faster than SQLite.

A historical import is a loop of "read a page, append it" (with a save of the state,
and its fsyncs, every few pages: see pipeline's BACKFILL_HOLD).
SQLite builds a page without the GIL, and the disk work does not need the CPU, so the
two overlap: as soon as the statements of a full page have answered, the next page
(the rows after it, same bound and size) is read in the background, in two halves at
once, each on a read-only connection of its own. Building the lines (``json_object``
per row) is the bound, as long as ``sqlite3 -json`` takes for the same rows: two
halves at once are the one way below it (two whole pages ahead did as well, but held a
page more in memory: 74 MB at the peak, where halves stay under 64). The second half
starts where the first will end when the ids have no gaps (the server's never do
unless rows were deleted); when they have, it is dropped and read again from the
first half's end. The checks of a page (its UTF-8, in Python, holding the GIL: a sixth
of a backfill's CPU) run in the caller's thread, beside the next page's statements.
(The follower does not read ahead: its reads stay short and apart, see pipeline.py.)

It changes nothing about what is written: the pipeline still decides under its lock,
from the state on disk, which rows it wants, and a page read ahead is used only when
it was read with exactly those arguments; otherwise it is dropped and read afresh. A
page read ahead is a snapshot a few milliseconds older than a fresh read would be,
which is no different from the read itself happening a few milliseconds earlier; its
halves are two such snapshots, joined only where the first ends at the row the second
starts after.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from .source import Answer, Page, Run, Source

Key = tuple[int, int | None, int]


class Prefetcher:
    """``read`` as :meth:`Source.read`, with the next full page read ahead in halves."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._aheads = [  # (a scan in id order reads each page once: a small cache)
            Source(source.path, utc=source.utc, busy_timeout=source.busy_timeout, cache_kib=256)
            for _ in range(2)
        ]
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[Key, Future[Answer], Future[Answer]] | None = None
        self._locks = (threading.Lock(), threading.Lock())

    def read(self, after: int, upto: int | None, limit: int) -> Page:
        key = (after, upto, limit)
        halves = self._take(key)
        if halves is not None and halves[0].count is not None:
            page = self._joined(key, *halves)
            if page is not None:
                return page
        # In one statement here: nothing was read ahead for these arguments, or the
        # first half did not check out (it is read again with the whole page: alone, on
        # a newer snapshot, it could reach into the second half's rows)
        answer = self.source.ask(after, upto, limit)
        if self._pending is None:
            self._next(key, answer.count, answer.last_id)
        return self.source.page(answer)

    def _joined(self, key: Key, first: Answer, second: Answer) -> Page | None:
        """The page from its halves read ahead; None when the first does not check out."""
        _after, upto, limit = key
        if first.count != first.params[2]:  # short of its limit: nothing after it to read
            return self.source.checked(first)
        if second.params[0] != first.last_id:  # a gap in the ids: it is not the rest
            second = self.source.ask(first.last_id, upto, limit - first.params[2])
        if second.count is not None:  # where the next page starts: read it ahead now
            self._next(key, (first.count or 0) + second.count, second.last_id or first.last_id)
        head = self.source.checked(first)
        if head is None:
            return None
        page = _join(head, self.source.page(second))  # (the rest: after the first's end)
        if second.count is None:
            self._next(key, page.count, page.last_id)
        return page

    def _next(self, key: Key, count: int | None, last: int) -> None:
        """Read the page after ``key``'s ahead, when that one was full."""
        _after, upto, limit = key
        if count == limit >= 2 and (upto is None or last < upto):
            self._start((last, upto, limit))

    def _take(self, key: Key) -> tuple[Answer, Answer] | None:
        """The halves read ahead if they were read for ``key`` (waits for their reads)."""
        if self._pending is None:
            return None
        wanted, first, second = self._pending
        self._pending = None
        halves: list[Answer] = []
        for future in (first, second):  # both waited for: no read is left running
            with contextlib.suppress(Exception):  # the fresh read reports it, if it persists
                halves.append(future.result())
        if len(halves) != 2 or wanted != key:
            return None
        return halves[0], halves[1]

    def _start(self, key: Key) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(2, thread_name_prefix="prefetch")
        after, upto, limit = key
        half = limit // 2
        first = self._executor.submit(self._read_ahead, 0, (after, upto, half))
        second = self._executor.submit(self._read_ahead, 1, (after + half, upto, limit - half))
        self._pending = (key, first, second)

    def _read_ahead(self, which: int, key: Key) -> Answer:
        with self._locks[which]:
            return self._aheads[which].ask(*key)

    def close(self) -> None:
        """Drop any page read ahead, stop the threads and close their connections."""
        if self._pending is not None:
            for future in self._pending[1:]:
                future.cancel()
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for which, ahead in enumerate(self._aheads):
            with self._locks[which]:
                ahead.close()


def _join(first: Page, second: Page) -> Page:
    """Two consecutive pages as the one page a single read of both would have given
    (a day's run across the seam is one run)."""
    if not second.count:
        return first
    runs = [*first.runs, *second.runs]
    seam = len(first.runs)
    if first.runs and second.runs and runs[seam - 1].day == runs[seam].day:
        a, b = runs[seam - 1], runs[seam]
        runs[seam - 1 : seam + 1] = [Run(a.day, a.data + b.data, a.first_id, b.last_id)]
    return Page(
        runs,
        first.count + second.count,
        second.last_id,
        after_stamp=first.after_stamp,
        last_stamp=second.last_stamp,
    )
