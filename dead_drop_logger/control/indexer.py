"""The logger keeps the index beside its logs current, off its hot path.

Why a thread that watches the state file: a batch is committed when its state is saved
(docs/exactly-once.md), so a state file that changed is the one sign that there are
new committed lines to index, and looking at it costs a ``stat``. The thread never
takes the writer lock and never delays a batch: it wakes every :data:`INTERVAL`
seconds, and indexes (in SQLite transactions of its own) the new lines of each log
directory (every room's too) whose state changed. While more than :data:`FAST` bytes
were logged since its last look (a writer going flat out, a backfill, a first start
over big logs), it waits: indexing a line costs about four times what logging it does
(~24 µs against 6, parsed in Python), so keeping up then took the interpreter from the
logger's batches (an indexer thread using three times the logger's own CPU under a
writer going flat out). Once the logs grow slower, a look indexes all that waited. A
failure is logged once and the next change tries again: the index is a cache, readers
scan without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from ..crypt.keys import identity_configured, is_encrypted
from ..index.store import Store
from ..logdir.layout import room_dirs
from ..logdir.state import STATE_NAME

log = logging.getLogger(__name__)
INTERVAL = 2.0  # seconds between looks at the state files
THREAD_NAME = "ddl-indexer"
FAST = 4 << 20  # bytes logged between two looks (2 MB/s) that make indexing wait


def _mark(log_dir: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(log_dir / STATE_NAME)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _size(log_dir: Path) -> int:
    """The bytes of the message files (what the index has to read, roughly)."""
    total = 0
    try:
        with os.scandir(log_dir) as entries:
            for entry in entries:
                if entry.name.startswith("messages-") and entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        return 0
    return total


class Indexer:
    """Brings the index of ``log_dir`` and its rooms up to date after batches."""

    def __init__(self, log_dir: Path, interval: float = INTERVAL, fast: int = FAST) -> None:
        self.log_dir = log_dir
        self.interval = interval
        self.fast = fast
        self.stop = threading.Event()
        self.marks: dict[Path, tuple[int, int] | None] = {}
        self.failed: set[Path] = set()
        self.seen: dict[Path, tuple[int, int] | None] = {}  # the mark at the last look
        self.done: dict[Path, int] = {}  # the message files' bytes at the last update
        self.sizes: dict[Path, int] = {}  # ... and at the last look
        self.stores: dict[Path, tuple[Store, int]] = {}  # kept open: names and words loaded once
        self.thread = threading.Thread(target=self._loop, name="indexer", daemon=True)

    def _loop(self) -> None:
        comm = f"/proc/self/task/{threading.get_native_id()}/comm"  # its name in ps (Linux)
        with contextlib.suppress(OSError), open(comm, "w") as name:
            name.write(THREAD_NAME)
        while not self.stop.wait(self.interval):
            self.once()
        for store, _inode in self.stores.values():
            store.close()

    def _update(self, where: Path) -> bool:
        """Index ``where``'s new lines; False when a reader held the index (the next
        look tries again)."""
        from ..index.store import Store, index_path
        from ..read.indexed import build, update

        try:
            inode = os.stat(index_path(where)).st_ino
        except OSError:
            inode = None
        kept = self.stores.get(where)
        if kept is not None and kept[1] != inode:  # rebuilt or deleted meanwhile
            kept[0].close()
            del self.stores[where]
            kept = None
        if kept is None:
            build(where)  # made anew when missing or damaged
            store = Store.open(where, write=True)
            if store is None:
                raise OSError(f"cannot write {index_path(where)}")
            store.partials_cache = {}  # stats' partials kept in memory (read/statfile.py)
            self.stores[where] = (store, os.stat(index_path(where)).st_ino)
            return True
        try:
            return update(kept[0], where)
        except Exception:
            kept[0].close()
            del self.stores[where]
            raise

    def once(self) -> None:
        """One look: index every directory whose state changed since the last."""
        for where in [self.log_dir, *room_dirs(self.log_dir)]:
            if self.stop.is_set():
                return
            mark = _mark(where)
            if mark is None or self.marks.get(where) == mark:
                continue
            if is_encrypted(where) and not identity_configured():
                continue  # sealed files the logger has no key to read: no index of them
            previous = self.seen.get(where)  # (none: the first look, which waits for a second)
            busy = previous is None or previous != mark  # a batch since the last look
            self.seen[where] = mark
            size = _size(where)
            grown = size - self.sizes.get(where, self.done.get(where, 0))
            self.sizes[where] = size
            if busy and grown > self.fast:
                continue  # logging fast: the GIL is the logger's; indexed once it slows
            try:
                if not self._update(where):
                    continue
            except Exception as exc:  # a cache: said once, tried again at the next change
                if where not in self.failed:
                    log.warning("cannot bring the index of %s up to date: %s", where, exc)
                    self.failed.add(where)
                continue
            self.failed.discard(where)
            self.marks[where] = mark
            self.done[where] = size


@contextlib.contextmanager
def keeping_index(log_dir: Path) -> Iterator[Indexer]:
    """An :class:`Indexer` running for the duration of the ``with``."""
    indexer = Indexer(log_dir)
    indexer.thread.start()
    try:
        yield indexer
    finally:
        indexer.stop.set()
        indexer.thread.join(timeout=5)
