"""The search filters as index queries, and lines read back by offset.

Why it looks like this: every filter but the content's has an exact column (a name is a
string or the line is odd, see :mod:`..index.store`), so those are answered by SQL
alone and the matching lines are only read to be printed (``--count`` reads none).
``contains`` and ``regex`` are answered by candidates: the rows the other filters (and,
for ``contains``, the full-text index) leave, each read and tested with the same
:meth:`.search.Filters.matches` as the scan. A file where that would read more than the
scan (no filter narrows) is scanned instead.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..index.store import (
    CC_DEFAULT,
    KEY_BITS,
    MIN_WORD,
    FileRecord,
    IndexError_,
    Store,
    key_of,
    key_range,
    micros,
)
from ..logdir.layout import LogFile
from .logread import BLOCK, LogReadError, Window

if TYPE_CHECKING:
    from .search import Filters

MAX_TERMS = 256  # words holding a needle's run looked up; past it the run is not used
_RUN = re.compile(r"[a-z]+")
_OFFSET = (1 << KEY_BITS) - 1


@dataclass
class Query:
    """The filters as SQL over one store: ``where`` (with ``params``); ``words``: the
    full-text expression the rows must match (None: no full-text condition); ``verify``:
    the rows are candidates, each to be tested; ``never``: no row can match."""

    where: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)
    words: str | None = None
    verify: bool = False
    never: bool = False

    @property
    def narrows(self) -> bool:
        return bool(self.where) or self.words is not None

    def sql(
        self,
        record: FileRecord,
        columns: str,
        tail: str = "",
        span: tuple[int, int] | None = None,
    ) -> tuple[str, list[object]]:
        """The rows of ``record``'s file, up to its end as the record says (rows an
        update has added since are past it: the reader scans those bytes); ``span``:
        only the lines starting in these bytes (start, end) of it."""
        store_fid = record.fid
        start, end = (0, record.end) if span is None else span
        low, high = key_of(store_fid, start), key_of(store_fid, end) - 1
        where = ["key BETWEEN ? AND ?", *self.where]
        params: list[object] = [low, high, *self.params]
        if self.words is not None:
            fts = f"fts_{store_fid}"
            if span is None:
                where.append(f"key IN (SELECT rowid FROM {fts} WHERE {fts} MATCH ?)")
                params.append(self.words)
            else:  # the full-text lookup bounded too: only the span's part of each word
                where.append(
                    f"key IN (SELECT rowid FROM {fts} WHERE {fts} MATCH ?"
                    " AND rowid BETWEEN ? AND ?)"
                )
                params += [self.words, low, high]
        return f"SELECT {columns} FROM lines WHERE {' AND '.join(where)} {tail}", params


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def plan(store: Store, filters: Filters, window: Window) -> Query:
    """The query for ``filters`` and ``window`` over ``store``."""
    query = Query()
    names = store.names()

    def nids(values: tuple[str, ...]) -> list[int] | None:
        found = [names[v] for v in values if _encodable(v) and v in names]
        return found or None

    def one_of(column: str, values: list[int]) -> str:
        query.params.extend(values)
        return f"{column} IN ({','.join('?' * len(values))})"

    for column, values in (("sender", filters.senders), ("recipient", filters.recipients)):
        if values:
            found = nids(values)
            if found is None:
                query.never = True
                return query
            query.where.append(one_of(column, found))
    if filters.agents:
        found = nids(filters.agents)
        if found is None:
            query.never = True
            return query
        query.where.append(f"({one_of('sender', found)} OR {one_of('recipient', found)})")
    if filters.task is not None:
        found = nids((filters.task,))
        if found is None:
            query.never = True
            return query
        query.where.append(one_of("task", found))
    if filters.no_cc:
        query.where.append(f"(flags & {CC_DEFAULT}) = 0")
    if window.since is not None:
        query.where.append("ts >= ?")
        query.params.append(micros(window.since))
    if window.until is not None:
        query.where.append("ts < ?")
        query.params.append(micros(window.until))
    if filters.contains or filters.regex is not None:
        query.verify = True
    if filters.contains and store.content:
        groups: list[str] = []
        for needle in filters.contains:
            for run in _RUN.findall(needle.casefold()):
                if len(run) < MIN_WORD:
                    continue
                terms = [
                    term
                    for (term,) in ask(
                        store,
                        "SELECT term FROM terms WHERE instr(term, ?) > 0 LIMIT ?",
                        (run, MAX_TERMS + 1),
                    )
                ]
                if not terms:
                    query.never = True
                    return query
                if len(terms) <= MAX_TERMS:
                    groups.append("(" + " OR ".join(f'"{term}"' for term in terms) + ")")
        if groups:
            query.words = " AND ".join(groups)
    return query


class LineSource:
    """Lines of one file read back by offset: a plain file through a window of
    :data:`.logread.BLOCK` bytes (neighbouring lines cost one read), a gzip inflated
    once."""

    def __init__(self, entry: LogFile, backwards: bool = False) -> None:
        self.entry = entry
        self.backwards = backwards
        self.data = b""
        self.at = 0
        self.fd: int | None = None
        self.opened = False  # opened at the first line asked for: a file with no row never

    def _open(self) -> None:
        from .logread import UnreadableFile

        self.opened = True
        try:
            if self.entry.encrypted:  # decrypted (and gunzipped) in memory, never to disk
                from ..crypt import segments

                self.data = segments.read_segment(self.entry.path)
            elif self.entry.compressed:
                from .indexed import gunzip

                self.data = gunzip(self.entry.path)
            else:
                self.fd = os.open(self.entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:  # (checked just before: gone or denied since)
            raise UnreadableFile(self.entry.path, exc.strerror or str(exc)) from None

    def get(self, offset: int, length: int) -> bytes:
        if not self.opened:
            self._open()
        start = offset - self.at
        if start >= 0 and start + length <= len(self.data):
            return self.data[start : start + length]
        assert self.fd is not None
        size = max(length, BLOCK)
        at = max(0, offset + length - size) if self.backwards else offset
        self.data = os.pread(self.fd, size, at)
        self.at = at
        start = offset - at
        return self.data[start : start + length]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> LineSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def ask(store: Store, sql: str, params: Any = ()) -> Iterator[Any]:
    """``store.query`` for a reader: an index found damaged mid-answer is an error the
    command reports in one line (what was printed cannot be taken back)."""
    try:
        yield from store.query(sql, params)
    except IndexError_ as exc:
        raise LogReadError(f"{exc}; run `dead-drop-logger index --rebuild`") from None


def rows(
    store: Store,
    record: FileRecord,
    query: Query,
    *,
    backwards: bool = False,
    limit: int | None = None,
) -> Iterator[tuple[int, int, int | None]]:
    """(offset, length, ts) of the rows of file ``fid`` the query selects, in file
    order (``backwards``: from the end)."""
    tail = "ORDER BY key DESC" if backwards else "ORDER BY key"
    if limit is not None:
        tail += f" LIMIT {int(limit)}"
    sql, params = query.sql(record, "key, len, ts", tail)
    for key, length, ts in ask(store, sql, params):
        yield key & _OFFSET, length, ts


def count(
    store: Store, record: FileRecord, query: Query, span: tuple[int, int] | None = None
) -> int:
    sql, params = query.sql(record, "count(*)", span=span)
    for (found,) in ask(store, sql, params):
        return int(found)
    return 0


# The planner's one estimate (issue 20: a common word must not make the index slower
# than the scan). The candidates are read one by one, a few microseconds of Python
# each; the scan searches a file's bytes for the needles at memory speed and parses
# only the lines holding them. Where the candidates are denser than one per
# DENSE_BYTES of the file, the file is scanned instead (measured on the benchmark's
# logs: 176,000 candidates of 1,000,000 lines took 1.4 s through the index, the scan
# 0.8 s). The density is counted in SLICES spans of SLICE bytes spread over the file,
# so the estimate costs a few small lookups, not the full-text lookup of the file.
DENSE_BYTES = 1 << 13
SLICE = 1 << 18
SLICES = 2


def dense(store: Store, record: FileRecord, query: Query) -> bool:
    """Whether ``query``'s candidates in ``record``'s file are so many that the byte
    scan of the file is faster than reading them one by one (an estimate: either way
    the answer is the same)."""
    end = record.end
    if end <= SLICE * SLICES:
        spans = [(0, end)]
    else:
        spans = [(end * i // SLICES, end * i // SLICES + SLICE) for i in range(SLICES)]
    sampled = sum(b - a for a, b in spans)
    found = 0
    for span in spans:
        found += count(store, record, query, span)
        if found * DENSE_BYTES > sampled:
            return True  # (the other spans can only add to it)
    return False


def stamp_of(ts: int | None) -> dt.datetime | None:
    from ..index.store import from_micros

    return None if ts is None else from_micros(ts)


def groups(
    store: Store, record: FileRecord, window: Window
) -> Iterator[tuple[tuple[object, object, bool], int, dt.datetime | None, dt.datetime | None]]:
    """The lines of ``record``'s file (up to its end) inside ``window`` per (sender,
    recipient, is CC): how many, the first and last time (``agents``). Unbounded: the
    counts kept per file, if the file's rows are still those the record says (one
    snapshot); else grouped from the rows."""
    from ..index.store import CC, from_micros

    found = None if window.bounded else _pairs(store, record)
    if found is None:
        where = ["key BETWEEN ? AND ?"]
        params: list[object] = [key_range(record.fid)[0], key_of(record.fid, record.end) - 1]
        if window.since is not None:
            where.append("ts >= ?")
            params.append(micros(window.since))
        if window.until is not None:
            where.append("ts < ?")
            params.append(micros(window.until))
        found = list(
            ask(
                store,
                f"SELECT sender, recipient, flags & {CC}, count(*), min(ts), max(ts) FROM lines"
                f" WHERE {' AND '.join(where)} GROUP BY 1, 2, 3",
                params,
            )
        )
    name = store.name_of
    for sender, recipient, cc, count, first, last in found:
        yield (
            (name(sender), name(recipient), bool(cc)),
            int(count),
            None if first is None else from_micros(first),
            None if last is None else from_micros(last),
        )


def _pairs(store: Store, record: FileRecord) -> list[Any] | None:
    """The counts kept for ``record``'s file, None when an update changed them since
    the record was read (read with the record's end in one transaction)."""
    import sqlite3

    try:
        store.conn.execute("BEGIN")
        try:
            now = store.conn.execute('SELECT "end" FROM files WHERE fid = ?', (record.fid,))
            if now.fetchall() != [(record.end,)]:
                return None
            return store.conn.execute(
                "SELECT sender, recipient, cc, n, first, last FROM pairs WHERE fid = ?",
                (record.fid,),
            ).fetchall()
        finally:
            store.conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise LogReadError(f"the index {store.path}: {exc}") from None
