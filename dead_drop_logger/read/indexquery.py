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
from typing import TYPE_CHECKING

from ..index.store import CC_DEFAULT, KEY_BITS, MIN_WORD, Store, key_range, micros
from ..logdir.layout import LogFile
from .logread import BLOCK, Window

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

    def sql(self, store_fid: int, columns: str, tail: str = "") -> tuple[str, list[object]]:
        low, high = key_range(store_fid)
        where = ["key BETWEEN ? AND ?", *self.where]
        params: list[object] = [low, high, *self.params]
        if self.words is not None:
            where.append(
                f"key IN (SELECT rowid FROM fts_{store_fid} WHERE fts_{store_fid} MATCH ?)"
            )
            params.append(self.words)
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
                    for (term,) in store.query(
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
        self.whole = entry.compressed
        if entry.compressed:
            from .indexed import gunzip

            self.data = gunzip(entry.path)
        else:
            self.fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)

    def get(self, offset: int, length: int) -> bytes:
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


def rows(
    store: Store,
    fid: int,
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
    sql, params = query.sql(fid, "key, len, ts", tail)
    for key, length, ts in store.query(sql, params):
        yield key & _OFFSET, length, ts


def count(store: Store, fid: int, query: Query) -> int:
    sql, params = query.sql(fid, "count(*)")
    for (found,) in store.query(sql, params):
        return int(found)
    return 0


def stamp_of(ts: int | None) -> dt.datetime | None:
    from ..index.store import from_micros

    return None if ts is None else from_micros(ts)


def groups(
    store: Store, fid: int, window: Window
) -> Iterator[tuple[tuple[object, object, bool], int, dt.datetime | None, dt.datetime | None]]:
    """The lines of file ``fid`` inside ``window`` per (sender, recipient, is CC): how
    many, the first and last time (``agents``)."""
    from ..index.store import CC, from_micros

    if not window.bounded:
        sql = "SELECT sender, recipient, cc, n, first, last FROM pairs WHERE fid = ?"
        params: list[object] = [fid]
    else:
        low, high = key_range(fid)
        where = ["key BETWEEN ? AND ?"]
        params = [low, high]
        if window.since is not None:
            where.append("ts >= ?")
            params.append(micros(window.since))
        if window.until is not None:
            where.append("ts < ?")
            params.append(micros(window.until))
        sql = (
            f"SELECT sender, recipient, flags & {CC}, count(*), min(ts), max(ts) FROM lines"
            f" WHERE {' AND '.join(where)} GROUP BY 1, 2, 3"
        )
    name = store.name_of
    for sender, recipient, cc, count, first, last in store.query(sql, params):
        yield (
            (name(sender), name(recipient), bool(cc)),
            int(count),
            None if first is None else from_micros(first),
            None if last is None else from_micros(last),
        )
