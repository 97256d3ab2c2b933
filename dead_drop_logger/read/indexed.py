"""The index seen from the readers: bringing it up to date, and trusting it file by file.

Why it looks like this:
- The index (:mod:`..index.store`) is behind the read API: a reader asks :func:`covers`
  which of its files the index covers, and up to which byte; everything past that byte
  (lines not yet indexed, or not yet committed) is scanned as before, and a file the
  index does not cover at all is scanned whole. So an answer through the index is the
  scan's answer even while a writer appends, and the index is never a reason to fail:
  absent, behind, unwritable (a read-only log directory) or damaged (one warning line),
  the files are scanned.
- Only committed lines are indexed (:mod:`.committed`): a line past the committed end
  can still be cut back by a crash and written again with other bytes.
- Each file's rows are trusted only after checking that the file still holds them
  (:func:`holds`): the first line, and the last indexed line at its offset, followed by
  a line break. A file cut back, replaced, restored from a backup or gone loses its
  rows at the next update; a reader that cannot update just scans it.
- :func:`update` catches up only new bytes. The daemon runs it after its batches (off
  the hot path, in a thread of its own); a reader runs it when the new bytes are few
  (:data:`CATCH_UP`), so a directory without a daemon stays current; ``dead-drop-logger
  index`` (``--rebuild``) does the rest.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypt.agentkeys import content_sealed
from ..crypt.keys import is_encrypted
from ..index.store import (
    HEAD,
    INDEX_NAME,
    Batch,
    FileRecord,
    IndexError_,
    Store,
    batch_of,
    busy,
    index_path,
)
from ..logdir.layout import LogFile
from . import statfile
from .committed import committed_ends
from .logread import (
    READ_AHEAD,
    Chunk,
    DamagedFile,
    LogDir,
    Reader,
    Tail,
    UnreadableFile,
    gzip_size,
    read_ahead,
    read_chunks,
    select_files,
)

CATCH_UP = 32 << 20  # new bytes a reader indexes itself before answering
PARALLEL = 64 << 20  # new bytes past which `index` parses them in worker processes
PARALLEL_AHEAD = 8  # chunks (of about 1 MB) handed to the workers ahead of the writer
BUSY_WAIT = 30.0  # seconds `index` waits for readers holding the index
READER_WAIT_MS = 50  # how long a reader waits to catch up before it scans the rest


@dataclass(frozen=True)
class Covered:
    """The indexed prefix of one file: its rows in ``store`` cover ``[0, record.end)``."""

    store: Store
    record: FileRecord


def _stamp(path: Path) -> str | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def holds(record: FileRecord, entry: LogFile) -> bool:
    """Whether ``entry`` still holds what ``record`` indexed of it (and can be read:
    a file that cannot is left to the scan, which says so)."""
    if record.name != entry.path.name:
        return False
    try:
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    if entry.sealed:  # a gzip or an age segment: the very file indexed (no plain bytes)
        os.close(fd)
        return record.stamp == _stamp(entry.path)
    if record.end == 0:
        os.close(fd)
        return True
    try:
        if os.pread(fd, len(record.first), 0) != record.first:
            return False
        at = record.last_off
        before = (
            os.pread(fd, len(record.last) + 1, at - 1)
            if at
            else b"\n" + os.pread(fd, len(record.last), 0)
        )
        return before == b"\n" + record.last and os.pread(fd, 1, record.end - 1) == b"\n"
    except OSError:
        return False
    finally:
        os.close(fd)


def _plain_name(entry: LogFile) -> str:
    return entry.path.name.removesuffix(".gz")


def create(log_dir: Path, *, content: bool = True, workers: int = 0) -> Store:
    """A new index of ``log_dir``, built whole in a temporary file and renamed over
    the old one (a reader meanwhile reads the old one, or none)."""
    temp = log_dir / f"{INDEX_NAME}.tmp-{os.getpid()}"
    store = Store.create(temp, content=content)
    try:
        update(store, log_dir, workers=workers)
        os.replace(temp, index_path(log_dir))
        store.path = index_path(log_dir)
    except BaseException:
        store.close()
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return store


def update(store: Store, log_dir: Path, budget: int | None = None, workers: int = 0) -> bool:
    """Bring ``store`` up to date with the committed lines of ``log_dir``'s message
    files; False when it did not (another process is at it, or more than ``budget``
    new bytes). ``workers``: processes that parse the lines of a big update
    (:func:`_pool`). Raises IndexError_ when the index is damaged."""
    import sqlite3

    files = select_files(log_dir)
    ends = committed_ends((log_dir, entry) for entry in files)
    try:
        if not store.begin():
            return False
        try:
            done = _update(store, LogDir(log_dir), files, ends, budget, workers)
        except BaseException:
            store.rollback()
            raise
        if done:
            store.commit()
        else:
            store.rollback()
        return done
    except sqlite3.DatabaseError as exc:
        if busy(exc):  # a reader holds it: the next update will do it
            store.rollback()
            return False
        raise IndexError_(f"index {store.path} is damaged ({exc})") from None


def _update(
    store: Store,
    source: LogDir,
    files: list[LogFile],
    ends: dict[Path, int | None],
    budget: int | None,
    workers: int = 0,
) -> bool:
    records = store.records()
    current = {(entry.day.isoformat(), entry.part): entry for entry in files}
    for key, gone in records.items():
        if key not in current:  # pruned, or retention: its rows go with it
            store.drop_file(gone)
    work: list[tuple[FileRecord | None, LogFile, int, int | None]] = []
    for key, entry in current.items():
        record: FileRecord | None = records.get(key)
        if entry.encrypted:  # a sealed segment: indexed whole once committed, by its stamp
            if ends.get(entry.path) == 0 or (record is not None and holds(record, entry)):
                continue  # (0: a pending record names it, not committed yet)
            if record is not None:
                store.drop_file(record)
            work.append((None, entry, 0, None))
            continue
        if entry.compressed:
            if record is not None and holds(record, entry):
                continue
            if (
                record is not None
                and record.name == _plain_name(entry)
                and record.stamp is None
                and gzip_size(entry.path) == record.end % (1 << 32)
            ):  # compressed since it was indexed whole: the same bytes, the same offsets
                record.name = entry.path.name
                record.stamp = _stamp(entry.path)
                store.save_file(record)
                continue
            if record is not None:
                store.drop_file(record)
            work.append((None, entry, 0, None))
            continue
        end = ends.get(entry.path)
        if end is None:
            continue
        start = 0
        if record is not None and holds(record, entry) and end >= record.end:
            start = record.end
        elif record is not None:  # cut back, replaced or restored: indexed again
            store.drop_file(record)
            record = None
        if end > start or record is None:
            work.append((record, entry, start, end))
    todo = sum(_work(entry, end) - start for _r, entry, start, end in work)
    if budget is not None and todo > budget:
        return False
    with _pool(workers if todo > PARALLEL else 0) as pool:
        for known, entry, start, end in work:
            if known is None:
                known = store.new_file(entry.day.isoformat(), entry.part, entry.path.name)
            _index_file(store, known, source, entry, start, end, pool)
    if store.partials_cache and current:
        newest = max(current)
        now = store.records()
        for key, record in now.items():
            part = store.partials_cache.get(record.fid)
            if key == newest or part is None:
                continue
            if part.saved < part.end == record.end and not part.odd:  # a day written, whole
                store.save_partial(record.fid, part.end, *part.dump())
            del store.partials_cache[record.fid]
    return True


def _work(entry: LogFile, end: int | None) -> int:
    """About how many bytes indexing ``entry`` up to ``end`` reads (None: whole)."""
    if end is not None:
        return end
    if entry.encrypted:
        with contextlib.suppress(OSError):
            return os.stat(entry.path).st_size * (5 if entry.compressed else 1)
        return 0
    return (gzip_size(entry.path) or 0) * 2


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Any]:
    """A pool of ``workers`` processes that parse lines (None for fewer than 2).

    Why: a build is one pass that parses every line (JSON, the words of the content),
    about 3 s of one CPU per 100,000 lines; SQLite's part is a sixth of it. Parsing in
    worker processes while this one writes takes the build of 1,000,000 lines from
    about 35 s to the writer's share on two CPUs. Only ``dead-drop-logger index`` asks
    for them (the logger's thread and the readers never do: they index a few new lines
    at a time), and only past :data:`PARALLEL` new bytes. The workers are started
    (spawned: nothing of this process's threads or open files is inherited) and ended
    by this call."""
    if workers < 2:
        yield None
        return
    import multiprocessing

    try:
        pool = multiprocessing.get_context("spawn").Pool(workers)
    except OSError:  # no processes to be had (a limit, no /dev/shm): parse here
        yield None
        return
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _parsed(chunks: Iterator[Chunk], pool: Any) -> Iterator[tuple[Chunk, Batch]]:
    """Each chunk with its rows, in order; with ``pool`` (a process pool), parsed
    ``PARALLEL_AHEAD`` chunks ahead by its workers. An error reading the file (damage)
    comes after the rows of every chunk read before it, as without a pool."""
    if pool is None:
        for chunk in chunks:
            yield chunk, batch_of(chunk.offset, chunk.data)
        return
    ahead: deque[tuple[Chunk, Any]] = deque()
    failed: DamagedFile | UnreadableFile | None = None
    try:
        for chunk in chunks:
            ahead.append((chunk, pool.apply_async(batch_of, (chunk.offset, chunk.data))))
            if len(ahead) > PARALLEL_AHEAD:
                done, pending = ahead.popleft()
                yield done, pending.get()
    except (DamagedFile, UnreadableFile) as exc:
        failed = exc
    while ahead:
        done, pending = ahead.popleft()
        yield done, pending.get()
    if failed is not None:
        raise failed


def _index_file(
    store: Store,
    record: FileRecord,
    source: LogDir,
    entry: LogFile,
    start: int,
    end: int | None,
    pool: Any = None,
) -> None:
    whole = True
    part = _partial(store, record, source, entry, start)
    chunks = Tail._upto(read_chunks(source, entry, start), end)
    try:
        for chunk, batch in _parsed(chunks, pool):
            if not batch.lines:
                continue
            if record.end == 0:
                record.first = chunk.data[:HEAD]
            last_off, last_len = batch.lines[-1][:2]
            record.last_off = last_off
            record.last = chunk.data[last_off - chunk.offset :][: min(HEAD, last_len)]
            record.end = chunk.end
            store.add_rows(record, batch)
            if part is not None:
                statfile.feed_batch(part, batch.lines)
                part.end = chunk.end
    except (DamagedFile, UnreadableFile):
        whole = False  # indexed up to the damage; the scan reads on (and warns)
    if entry.sealed and whole:
        record.stamp = _stamp(entry.path)
    store.save_file(record)
    if part is not None and not part.odd:
        _keep(store, record, part, entry.sealed)


def _partial(
    store: Store, record: FileRecord, source: LogDir, entry: LogFile, start: int
) -> statfile.Partial | None:
    """The partial numbers of ``stats`` for the file's bytes before ``start``, to be fed
    on (:mod:`.statfile`): a new one at 0; for the logger's thread and ``index`` (which
    keep them in memory), the one kept, else the one in the index caught up with the
    lines it lacks (up to :data:`CATCH_UP` bytes). None: not kept on (a reader catching
    up, or too far behind): the stats reader reads the lines past the kept one."""
    if start == 0:
        return statfile.Partial()
    cache = store.partials_cache
    if cache is None:  # a reader's catch-up: the stats reader reads past the kept one
        return None
    found: statfile.Partial | None = cache.get(record.fid)
    if found is not None and found.end == start:
        return found
    raw = store.partial(record.fid)
    kept_end = 0 if raw is None else raw[0]
    if kept_end > start or start - kept_end > CATCH_UP:
        return None
    if raw is None:
        part = statfile.Partial()
    else:
        waits = store.partial_waits(record.fid, raw[0])
        if waits is None:
            return None
        part = statfile.Partial.load(*raw, waits)
        part.saved = kept_end
    part.ids = statfile.known_ids(store, record, kept_end)
    if kept_end < start:  # (read as stats reads, a fifth of the index's parsing)
        reader = Reader([source])
        statfile.feed_chunks(part, reader, reader.read_file(source, entry, kept_end), upto=start)
        if part.end != start or part.odd or reader.corrupt or reader.damaged or reader.unreadable:
            return None
    return part


def _keep(store: Store, record: FileRecord, part: statfile.Partial, whole: bool) -> None:
    """Save ``part`` in the index; the logger's thread (which keeps it in memory) only
    every :data:`.statfile.SAVE_EVERY` bytes of a growing file."""
    cache = store.partials_cache
    if cache is not None:
        cache[record.fid] = part
        if not whole and part.end - part.saved < statfile.SAVE_EVERY:
            return
    store.save_partial(record.fid, part.end, *part.dump())
    part.saved = part.end


@dataclass
class Index:
    """The indexes of a reader's directories, opened and brought up to date once."""

    stores: dict[Path, Store]

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


_WARNED: set[Path] = set()


def covers(reader: Reader, catch_up: int | None = CATCH_UP) -> dict[Path, Covered]:
    """For each of the reader's files that an index covers, by path, what it covers.
    A damaged index is named once in ``reader.notes`` (the files are scanned)."""
    found: dict[Path, Covered] = {}
    for source in reader.sources:
        try:
            store = _open(source.path, reader, catch_up)
        except (OSError, UnreadableFile):
            continue  # a directory that cannot be read: the scan says so
        if store is None:
            continue
        try:
            records = store.records()
        except Exception as exc:
            _damaged(reader, store.path, str(exc))
            continue
        for entry in _files_of(reader, source):
            record = records.get((entry.day.isoformat(), entry.part))
            if record is not None and record.odd == 0 and holds(record, entry):
                found[entry.path] = Covered(store, record)
    return found


def past(
    reader: Reader, source: LogDir, entry: LogFile, covered: Covered | None
) -> Iterator[Chunk]:
    """The chunks of ``entry`` past what the index covers (all of it: not covered).
    None of a gzip it covers: one is indexed whole (its stamp checked), and inflating
    it only to find nothing past the end would cost what the index saves."""
    if covered is None:  # read ahead in a thread, as the scan reads (the planner's
        return read_ahead(reader.read_file(source, entry), READ_AHEAD)  # files: as fast)
    if entry.sealed:
        return iter(())
    return reader.read_file(source, entry, covered.record.end)


def _files_of(reader: Reader, source: LogDir) -> Iterable[LogFile]:
    with contextlib.suppress(UnreadableFile):
        yield from select_files(source.path, reader.window, utc=reader.utc, kind=reader.kind)


def _damaged(reader: Reader, path: Path, why: str) -> None:
    if path in _WARNED:
        return
    _WARNED.add(path)
    reader.notes.append(
        f"the index {path} cannot be used ({why}): reading the log files instead"
        " (`dead-drop-logger index --rebuild` makes a new one)"
    )


def _open(log_dir: Path, reader: Reader, catch_up: int | None) -> Store | None:
    import sqlite3

    try:
        store = Store.open(log_dir, write=True) or Store.open(log_dir)
        if store is None:
            if catch_up is None or not os.access(log_dir, os.W_OK):
                return None
            if sum(_sizes(log_dir)) > catch_up:
                return None  # a big directory: `index` (or the daemon) builds it
            try:
                return create(log_dir, content=content_wanted(log_dir))
            except (OSError, sqlite3.Error):
                return None
        if store.writable and catch_up is not None:
            store.conn.execute(f"PRAGMA busy_timeout = {READER_WAIT_MS}")
            update(store, log_dir, catch_up)  # (held by another: answered without it)
            store.conn.execute("PRAGMA busy_timeout = 2000")
        return store
    except IndexError_ as exc:
        _damaged(reader, index_path(log_dir), str(exc).split("(", 1)[-1].rstrip(")"))
    except sqlite3.DatabaseError as exc:
        _damaged(reader, index_path(log_dir), str(exc))
    return None


def _sizes(log_dir: Path) -> Iterator[int]:
    for entry in select_files(log_dir):
        try:
            yield os.stat(entry.path).st_size * (5 if entry.compressed else 1)
        except OSError:
            continue


def content_wanted(log_dir: Path) -> bool:
    """Whether the index of ``log_dir`` may hold a full-text index of the content: not
    in a log directory encrypted at rest (sealed ``.age`` day files), whose content
    must never be on disk in plain text. The one place that decides it, by the
    encryption's own predicate (its marker is there before the first segment is)."""
    return not is_encrypted(log_dir) and not content_sealed(log_dir)


def gunzip(path: Path) -> bytes:
    with gzip.open(path, "rb") as stream:
        return stream.read()


@dataclass(frozen=True)
class Built:
    """What ``index`` did to one log directory."""

    log_dir: Path
    lines: int
    files: int
    size: int
    rebuilt: bool
    why: str = ""


def build(log_dir: Path, *, rebuild: bool = False, workers: int = 0) -> Built:
    """Bring ``log_dir``'s index up to date (``rebuild``: make it anew); a missing or
    damaged index is made anew; ``workers``: processes that parse a big one's lines
    (:func:`_pool`). Raises OSError when the directory cannot be written."""
    import sqlite3

    why = "asked to" if rebuild else ""
    store: Store | None = None
    if not rebuild:
        try:
            store = Store.open(log_dir, write=True)
            if store is not None:
                store.partials_cache = {}  # stats' partials kept on (read/statfile.py)
            if store is None and index_path(log_dir).exists():
                raise OSError(f"cannot write {index_path(log_dir)} (permission denied)")
            if store is not None:
                import time

                waited = 0.0
                while not update(store, log_dir, workers=workers) and waited < BUSY_WAIT:
                    time.sleep(0.1)  # another process holds it: wait for it
                    waited += 0.1
        except (IndexError_, sqlite3.DatabaseError) as exc:
            why = str(exc)
            store = None
    if store is None:
        if not os.access(log_dir, os.W_OK):
            raise OSError(f"cannot write {log_dir} (permission denied)")
        why = why or "there was none"
        store = create(log_dir, content=content_wanted(log_dir), workers=workers)
    try:
        lines, files = next(
            iter(store.query("SELECT coalesce(sum(lines), 0), count(*) FROM files"))
        )
    finally:
        store.close()
    return Built(log_dir, lines, files, os.stat(index_path(log_dir)).st_size, bool(why), why)
