"""``search``: which logged messages match the filters, as fast as grep and as exact as jq.

Two paths give the same answers (``tests/test_search.py`` holds them equal on hostile
content):

- the exact path parses every line and applies :meth:`Filters.matches`;
- the fast path looks for the filters' values in whole blocks of raw bytes first and
  parses only the lines that hold them all, then confirms with the same
  :meth:`Filters.matches`. It never misses a match because every line the logger
  writes is encoded one way only (:mod:`.encoding`: compact, non-ASCII raw, only ``"``,
  ``\\``, control characters and U+2028/U+2029 escaped, each always the same way), and
  that encoding works character by character: a string holding the text holds the
  text's encoding. So ``--from juno`` is the bytes ``"from_agent":"juno"`` and
  ``--contains 'a "b"'`` the bytes ``a \\"b\\"``. Where bytes cannot decide
  (``--ignore-case``, ``--regex``, ``--no-cc``, the time window), the candidates are
  parsed and checked exactly.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..crypt import agentkeys
from ..encoding import encode_value, escape_separators
from ..logdir.layout import LogFile
from .logread import (
    Chunk,
    Entry,
    Line,
    LogDir,
    Message,
    Reader,
    parse_line,
    timestamp_of,
)

if TYPE_CHECKING:
    from .indexed import Covered
    from .indexquery import Query


def encoded(text: str) -> bytes | None:
    """``text`` as the logger writes it in a JSON string (quotes included), None if it
    cannot be encoded (lone surrogates: then it cannot be in any line either)."""
    try:
        return escape_separators(encode_value(text, "text")).encode("utf-8")
    except UnicodeEncodeError:
        return None


@dataclass(frozen=True)
class Filters:
    """The search filters; they AND together, the values of one filter OR together.

    A filter on a key a message lacks (or holds with another type) does not match it."""

    senders: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    task: str | None = None
    contains: tuple[str, ...] = ()
    ignore_case: bool = False
    regex: re.Pattern[str] | None = None
    no_cc: bool = False

    @property
    def any(self) -> bool:
        return bool(
            self.senders
            or self.recipients
            or self.agents
            or self.task is not None
            or self.contains
            or self.regex is not None
            or self.no_cc
        )

    def matches(self, message: Message) -> bool:
        """The exact test, on a parsed message."""
        if self.senders and not _is_one_of(message.get("from_agent"), self.senders):
            return False
        if self.recipients and not _is_one_of(message.get("to_agent"), self.recipients):
            return False
        if self.agents and not (
            _is_one_of(message.get("from_agent"), self.agents)
            or _is_one_of(message.get("to_agent"), self.agents)
        ):
            return False
        if self.task is not None and not _is_one_of(message.get("task_id"), (self.task,)):
            return False
        if self.no_cc and message.get("is_cc", 1) in (1, True):
            return False
        if self.contains or self.regex is not None:
            if agentkeys.is_sealed(message):  # matched only as far as the identity opens it
                agentkeys.open_content(message)
            content = message.get("content")
            if not isinstance(content, str):
                return False
            if self.ignore_case:
                folded = content.casefold()
                if not all(needle.casefold() in folded for needle in self.contains):
                    return False
            elif not all(needle in content for needle in self.contains):
                return False
            if self.regex is not None and self.regex.search(content) is None:
                return False
        return True

    def byte_groups(self, sealed: bool = False) -> list[list[bytes]] | None:
        """What every matching line must hold: each group one of its byte strings, in
        the order best searched first (the rarest likely first). None when no match is
        possible at all (a value that cannot be encoded). ``sealed``: the log directory
        seals contents per agent (crypt/agentkeys.py): a line holding the marker is a
        candidate for every ``--contains``, opened and checked exactly."""
        groups: list[list[bytes]] = []
        if not self.ignore_case:
            for needle in sorted(self.contains, key=len, reverse=True):
                if needle:
                    found = encoded(needle)
                    if found is None:
                        return None
                    groups.append([found[1:-1], agentkeys.MARK] if sealed else [found[1:-1]])
        keyed = (
            ("task_id", (self.task,) if self.task is not None else ()),
            ("from_agent", self.senders),
            ("to_agent", self.recipients),
        )
        for key, values in keyed:
            if values:
                group = _key_values([key], values)
                if not group:
                    return None
                groups.append(group)
        if self.agents:
            group = _key_values(["from_agent", "to_agent"], self.agents)
            if not group:
                return None
            groups.append(group)
        return groups


def _sealed(source: LogDir) -> bool:
    """Whether ``source`` seals contents per agent (its marker: crypt/agentkeys.py)."""
    return os.path.lexists(source.path / agentkeys.MARKER)


def _is_one_of(value: object, wanted: Sequence[str]) -> bool:
    return isinstance(value, str) and value in wanted


def _key_values(keys: Sequence[str], values: Sequence[str]) -> list[bytes]:
    """``"key":"value"`` byte strings (values that cannot be encoded left out)."""
    found: list[bytes] = []
    for key in keys:
        prefix = b'"' + key.encode() + b'":'
        for value in values:
            text = encoded(value)
            if text is not None:
                found.append(prefix + text)
    return found


def candidate_lines(chunk: Chunk, groups: list[list[bytes]]) -> Iterator[Line]:
    """The lines of a chunk that hold one byte string of every group (all lines when
    there are no groups), found by searching the whole block, not line by line."""
    data = chunk.data
    if not groups:
        offset = chunk.offset
        for raw in chunk.lines():
            yield Line(chunk.source, chunk.file, offset, raw)
            offset += len(raw)
        return
    first, rest = groups[0], groups[1:]
    if len(first) == 1 and all(len(group) == 1 for group in rest):
        yield from _single_needles(chunk, first[0], [group[0] for group in rest])
        return
    for start, end in _lines_holding(data, first):
        if all(any(data.find(needle, start, end) >= 0 for needle in group) for group in rest):
            yield Line(chunk.source, chunk.file, chunk.offset + start, data[start:end])


def _single_needles(chunk: Chunk, needle: bytes, others: list[bytes]) -> Iterator[Line]:
    """:func:`candidate_lines` when every group is one byte string (the common case),
    in one loop: this runs once per occurrence of the first needle."""
    data, source, file, offset = chunk.data, chunk.source, chunk.file, chunk.offset
    find, rfind = data.find, data.rfind
    pos = find(needle)
    while pos >= 0:
        start = rfind(b"\n", 0, pos) + 1
        end = find(b"\n", pos) + 1
        for other in others:
            if find(other, start, end) < 0:
                break
        else:
            yield Line(source, file, offset + start, data[start:end])
        pos = find(needle, end)


def _lines_holding(data: bytes, needles: list[bytes]) -> Iterator[tuple[int, int]]:
    """(start, end) of every line holding one of ``needles``, in order, each once."""
    if len(needles) == 1:
        needle = needles[0]
        pos = data.find(needle)
        while pos >= 0:
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.index(b"\n", pos) + 1
            yield start, end
            pos = data.find(needle, end)
        return
    starts: set[int] = set()
    for needle in needles:
        pos = data.find(needle)
        while pos >= 0:
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.index(b"\n", pos) + 1
            starts.add(start)
            pos = data.find(needle, end)
    for start in sorted(starts):
        yield start, data.index(b"\n", start) + 1


class TimedOut(Exception):
    """A search passed its :attr:`Search.deadline` and stopped (``serve``'s request
    time limit: the thread answering a pathological query is given back)."""


def _expired(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimedOut


@dataclass
class Search:
    """One search over a reader's files: :meth:`run` yields matches in file order.

    Through the index where it covers a file (:mod:`.indexed`): the rows it selects,
    read back by offset, then the file's lines past what it covers, scanned; a file it
    does not cover is scanned whole. The same answer either way."""

    reader: Reader
    filters: Filters
    exact: bool = False  # parse every line (the reference path)
    use_index: bool = True  # False: scan every file (the reference for the index)
    # time.monotonic() past which reading stops with TimedOut, looked at between chunks
    # and candidate lines (None, the command line's: never; one comparison per line)
    deadline: float | None = None
    _cover: dict[Path, Covered] | None = field(default=None, init=False, repr=False)
    _plans: dict[int, Query] = field(default_factory=dict, init=False, repr=False)
    _densities: dict[tuple[int, int], bool] = field(default_factory=dict, init=False, repr=False)

    def covered(self) -> dict[Path, Covered]:
        """What the index covers of each file read (nothing: scan them all)."""
        if self._cover is None:
            self._cover = {}
            if self.use_index and not self.exact:
                from .indexed import covers

                self._cover = covers(self.reader)
        return self._cover

    def _query(self, covered: Covered) -> Query:
        from .indexquery import plan

        key = id(covered.store)
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = plan(covered.store, self.filters, self.reader.window)
        return found

    def _indexed(self, entry: LogFile, whole: bool = True) -> tuple[Covered, Query] | None:
        """The index's cover of ``entry`` and the query over it, None: scan the file
        (not covered, or no filter narrows the candidates it would read, or, when the
        whole file is to be read (``whole``), its candidates are so dense that the
        scan's byte search is faster: :func:`.indexquery.dense`)."""
        covered = self.covered().get(entry.path)
        if covered is None:
            return None
        query = self._query(covered)
        if query.verify and not query.never:
            if not query.narrows:
                return None
            if whole and self.filters.byte_groups() and self._dense(covered, query):
                return None
        return covered, query

    def _dense(self, covered: Covered, query: Query) -> bool:
        from .indexquery import dense

        key = (id(covered.store), covered.record.fid)  # (asked again by --count's files)
        found = self._densities.get(key)
        if found is None:
            found = self._densities[key] = dense(covered.store, covered.record, query)
        return found

    def file_entries(
        self, source: LogDir, entry: LogFile, stamps: bool = False
    ) -> Iterator[tuple[dt.datetime | None, Entry]]:
        """The matches of one file in file order, each with its time when ``stamps``."""
        from .indexed import past

        found = self._indexed(entry)
        if found is not None:
            covered, query = found
            if not query.never:
                yield from self._rows(source, entry, covered, query, stamps)
        tail = past(self.reader, source, entry, None if found is None else found[0])
        for match in self.entries(tail):
            yield (timestamp_of(match.message) if stamps else None), match

    def _rows(
        self,
        source: LogDir,
        entry: LogFile,
        covered: Covered,
        query: Query,
        stamps: bool,
        backwards: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[dt.datetime | None, Entry]]:
        from .indexquery import LineSource, rows, stamp_of

        filters = self.filters
        groups = filters.byte_groups(_sealed(source)) if query.verify else []
        if groups is None:
            return  # a value no line can hold
        taken = 0
        with LineSource(entry, backwards) as lines:
            for offset, length, ts in rows(
                covered.store,
                covered.record,
                query,
                backwards=backwards,
                limit=None if query.verify else limit,
            ):
                _expired(self.deadline)
                line = Line(source, entry, offset, lines.get(offset, length))
                if query.verify:
                    raw = line.raw
                    if groups and not all(any(n in raw for n in group) for group in groups):
                        continue  # (the scan's byte test: the bytes every match holds)
                    message = parse_line(raw)
                    if message is None or not filters.matches(message):
                        continue
                    found = Entry(line, message)
                else:
                    found = Entry(line)
                yield (stamp_of(ts) if stamps else None), found
                taken += 1
                if limit is not None and taken >= limit:
                    return

    def count(self) -> int:
        """How many match (``--count``): through the index, rows are counted, not read."""
        if not self.covered():
            return sum(1 for _ in self.run())
        from .indexed import past
        from .indexquery import count

        total = 0
        for source, entry in self.reader.files():
            found = self._indexed(entry)
            if found is None or found[1].verify:
                total += sum(1 for _ in self.file_entries(source, entry))
                continue
            covered, query = found
            if not query.never:
                if not query.where:
                    total += covered.record.lines
                else:
                    total += count(covered.store, covered.record, query)
            tail = past(self.reader, source, entry, covered)
            total += sum(1 for _ in self.entries(tail))
        return total

    def entries(self, chunks: Iterable[Chunk]) -> Iterator[Entry]:
        """The matching messages of ``chunks``."""
        groups: list[list[bytes]] | None = [] if self.exact else self.filters.byte_groups()
        if groups is None:
            for _chunk in chunks:  # still read: --follow keeps its positions
                _expired(self.deadline)
            return
        plain_groups = groups
        per_source: dict[LogDir, list[list[bytes]] | None] = {}
        filters, window, deadline = self.filters, self.reader.window, self.deadline
        for chunk in chunks:
            _expired(deadline)
            if not self.exact and filters.contains:  # contents sealed per agent there?
                if chunk.source not in per_source:
                    per_source[chunk.source] = (
                        filters.byte_groups(True) if _sealed(chunk.source) else plain_groups
                    )
                groups = per_source[chunk.source] or []
            for line in candidate_lines(chunk, groups):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimedOut
                message = parse_line(line.raw)
                if message is None:
                    self.reader.skip(line.file)
                    continue
                if window.bounded and not window.admits(timestamp_of(message)):
                    continue
                if filters.matches(message):
                    yield Entry(line, message)

    def run(self) -> Iterator[Entry]:
        """The matches in log order; several rooms' matches merged in time order."""
        if len(self.reader.sources) == 1:
            if not self.covered():
                return self.entries(self.reader.chunks())
            return self._single()
        return self._merged_days()

    def _single(self) -> Iterator[Entry]:
        for source, entry in self.reader.files():
            for _stamp, match in self.file_entries(source, entry):
                yield match

    def _merged_days(self) -> Iterator[Entry]:
        """Day by day, each room's matches of the day merged by timestamp (a k-way merge:
        one block of each room's day in memory at a time)."""
        for _day, files in _days(self.reader.files()):
            streams = [_running(self._read_all(parts)) for parts in _by_source(files)]
            for _key, entry in heapq.merge(*streams, key=_first):
                yield entry

    def _read_all(
        self, files: list[tuple[LogDir, LogFile]]
    ) -> Iterator[tuple[dt.datetime | None, Entry]]:
        for source, entry in files:
            yield from self.file_entries(source, entry, stamps=True)

    def _newest(self, files: list[tuple[LogDir, LogFile]], limit: int | None) -> Iterator[Entry]:
        """One source's matches in ``files``, newest first, at most ``limit``: from the
        last file back, its unindexed lines, then the index's rows from the end."""
        taken = 0
        for source, entry in reversed(files):
            found = self._indexed(entry, whole=limit is None)  # a limit reads few rows
            tail = [m for _s, m in self._scanned(source, entry, found)]
            for match in reversed(tail):
                yield match
                taken += 1
                if limit is not None and taken >= limit:
                    return
            if found is None or found[1].never:
                continue
            covered, query = found
            left = None if limit is None else limit - taken
            for _stamp, match in self._rows(
                source, entry, covered, query, False, backwards=True, limit=left
            ):
                yield match
                taken += 1
                if limit is not None and taken >= limit:
                    return

    def _scanned(
        self, source: LogDir, entry: LogFile, found: tuple[Covered, Query] | None
    ) -> Iterator[tuple[dt.datetime | None, Entry]]:
        from .indexed import past

        tail = past(self.reader, source, entry, None if found is None else found[0])
        for match in self.entries(tail):
            yield None, match

    def newest_first(self, limit: int | None) -> Iterator[Entry]:
        """Matches newest first (``--reverse``): days from the newest, each day's matches
        reversed (several rooms' merged by timestamp); with ``limit``, only as many days
        as the last ``limit`` matches need. Holds one day's matches of each room (or
        ``limit`` of them) at a time."""
        taken = 0
        if len(self.reader.sources) == 1 and self.covered():
            yield from self._newest(self.reader.files(), limit)
            return
        for _day, files in reversed(list(_days(self.reader.files()))):
            streams = []
            for parts in _by_source(files):
                kept: deque[tuple[dt.datetime, Entry]] = deque(
                    maxlen=None if limit is None else limit - taken
                )
                kept.extend(_running(self._read_all(parts)))
                streams.append(_popped(kept))
            for _key, found in heapq.merge(*streams, key=_first, reverse=True):
                yield found
                taken += 1
                if limit is not None and taken >= limit:
                    return

    def from_the_end(self, limit: int | None) -> Iterator[Entry]:
        """:meth:`newest_first` for a search without filters or window over one
        directory (``serve``'s newest page), read from the end of the newest file
        backwards: the newest 100 of a million lines cost 100 lines, not a day's.
        The same entries in the same order (one directory's log order, reversed); a
        corrupt line is counted only if it is read. Anything else: ``newest_first``."""
        if self.filters.any or self.reader.window.bounded or len(self.reader.sources) != 1:
            yield from self.newest_first(limit)
            return
        taken = 0
        for source, entry in reversed(self.reader.files()):
            for line in _backwards(self.reader, source, entry):
                if limit is not None and taken >= limit:
                    return
                _expired(self.deadline)
                message = parse_line(line.raw)
                if message is None:
                    self.reader.skip(line.file)
                    continue
                yield Entry(line, message)
                taken += 1


def _days(
    files: list[tuple[LogDir, LogFile]],
) -> Iterator[tuple[dt.date, list[tuple[LogDir, LogFile]]]]:
    """The reader's files (by day, then room, then part) grouped by day."""
    for day, group in itertools.groupby(files, key=lambda pair: pair[1].day):
        yield day, list(group)


def _by_source(files: list[tuple[LogDir, LogFile]]) -> list[list[tuple[LogDir, LogFile]]]:
    """One day's files, one list (its parts in order) per room."""
    rooms: dict[LogDir, list[tuple[LogDir, LogFile]]] = {}
    for pair in files:
        rooms.setdefault(pair[0], []).append(pair)
    return list(rooms.values())


def _running(
    entries: Iterable[tuple[dt.datetime | None, Entry]],
) -> Iterator[tuple[dt.datetime, Entry]]:
    """Each entry with the time to merge it by: its timestamp, or (none readable) the
    one before it in its room, so an undated message keeps its place in its stream."""
    last = dt.datetime.min
    for stamp, entry in entries:
        if stamp is not None:
            last = max(last, stamp)  # a stream out of order still merges without loss
        yield last, entry


def _popped(kept: deque[tuple[dt.datetime, Entry]]) -> Iterator[tuple[dt.datetime, Entry]]:
    while kept:
        yield kept.pop()


def _first(item: tuple[dt.datetime, Entry]) -> dt.datetime:
    return item[0]


BACK_BLOCK = 1 << 16


def _backwards(reader: Reader, source: LogDir, entry: LogFile) -> Iterator[Line]:
    """A file's whole lines, last first (a last line without its newline is still being
    appended: left out, as every reader does). A gzip, or a file that cannot be read
    this way, is read forwards by the reader (which notes damage) and reversed; so is an
    encrypted segment (decrypted by the reader, in memory)."""
    if not entry.sealed:
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                yield from _pread_backwards(fd, source, entry)
                return
            except OSError:
                pass  # read again forwards: the reader names the error
            finally:
                os.close(fd)
    lines: list[Line] = []
    for chunk in reader.read_file(source, entry):
        offset = chunk.offset
        for raw in chunk.lines():
            lines.append(Line(source, entry, offset, raw))
            offset += len(raw)
    yield from reversed(lines)


def _pread_backwards(fd: int, source: LogDir, entry: LogFile) -> Iterator[Line]:
    end = os.fstat(fd).st_size
    carry = b""  # the start of a line whose beginning is in an earlier block
    position = end
    first = True
    while position > 0:
        start = max(0, position - BACK_BLOCK)
        data = os.pread(fd, position - start, start) + carry
        position = start
        if first:  # the bytes after the last newline are a line still being appended
            data = data[: data.rfind(b"\n") + 1]
            first = False
        cut = 0
        if start > 0:  # the block's first bytes end a line that starts further back
            newline = data.find(b"\n")
            if newline < 0:
                carry = data
                continue
            cut = newline + 1
        carry, whole = data[:cut], data[cut:]
        offset = start + cut
        pieces = whole.split(b"\n")[:-1]
        stops = []
        at = offset
        for piece in pieces:
            stops.append((at, piece + b"\n"))
            at += len(piece) + 1
        for at, raw in reversed(stops):
            yield Line(source, entry, at, raw)
    if carry:
        yield Line(source, entry, 0, carry)
