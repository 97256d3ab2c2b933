"""``thread`` through the index: who replies to whom, looked up instead of scanned.

Why only when the index covers every file read, whole: a thread can reach any line of
any day, so a file the index does not cover (or a tail of lines past what it covers)
would have to be scanned in full anyway; then the scan does it all. The lookups answer
what :class:`.thread.ScanGraph` answers from its scan, provided every id is logged once
per room (the index records whether it is: ``dupes``); the lines are read back by offset
and parsed as the scan parses them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..index.store import CC_RAW, KEY_BITS, IndexError_, Store
from ..logdir.layout import LogFile
from .indexed import covers
from .indexquery import LineSource, ask
from .logread import Line, LogDir, Reader, select_files

Key = tuple[str | None, int]
_OFFSET = (1 << KEY_BITS) - 1


class IndexGraph:
    """The reply graph of a reader's rooms, through their indexes."""

    def __init__(
        self, reader: Reader, rooms: dict[str | None, tuple[LogDir, Store, dict[int, LogFile]]]
    ):
        self.reader = reader
        self.rooms = rooms

    def copies(self, target: int) -> set[str | None]:
        found: set[str | None] = set()
        for room, (_source, store, _files) in self.rooms.items():
            for _hit in ask(
                store,
                f"SELECT 1 FROM lines WHERE id = ? AND reply IS NULL AND (flags & {CC_RAW})"
                " LIMIT 1",
                (target,),
            ):
                found.add(room)
        return found

    def _parent(self, room: str | None, ident: int) -> int | None:
        store = self.rooms[room][1]
        for (reply,) in ask(
            store, "SELECT reply FROM lines WHERE id = ? AND reply IS NOT NULL LIMIT 1", (ident,)
        ):
            return int(reply)
        return None

    def _children(self, room: str | None, ident: int) -> list[int]:
        store = self.rooms[room][1]
        return [int(i) for (i,) in ask(store, "SELECT id FROM lines WHERE reply = ?", (ident,))]

    def members(self, key: Key) -> set[Key]:
        """As :func:`.thread._members` over the scan's parents."""
        room, _ident = key
        if room not in self.rooms:
            return {key}
        chain = [key]
        while True:
            parent = self._parent(room, chain[-1][1])
            if parent is None or (room, parent) in chain:
                break
            chain.append((room, parent))
        members = {chain[-1]}
        todo = [chain[-1]]
        while todo:
            for child in self._children(room, todo.pop()[1]):
                if (room, child) not in members:
                    members.add((room, child))
                    todo.append((room, child))
        return members | set(chain)

    def lines(self, wanted: set[Key]) -> Iterator[Line]:
        for room, (source, store, files) in self.rooms.items():
            ids = sorted(ident for where, ident in wanted if where == room)
            found: list[tuple[int, int]] = []
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                found += ask(
                    store,
                    f"SELECT key, len FROM lines WHERE id IN ({','.join('?' * len(part))})",
                    part,
                )
            by_file: dict[int, list[tuple[int, int]]] = {}
            for key, length in found:
                by_file.setdefault(key >> KEY_BITS, []).append((key & _OFFSET, length))
            for fid, rows in by_file.items():
                entry = files[fid]
                with LineSource(entry) as lines:
                    for offset, length in sorted(rows):
                        yield Line(source, entry, offset, lines.get(offset, length))


def index_graph(reader: Reader) -> IndexGraph | None:
    """The reader's reply graph through the index, None when the index does not cover
    every file whole (or an id is logged twice in a room): then the scan answers."""
    try:
        return _graph(reader)
    except IndexError_:
        return None


def _graph(reader: Reader) -> IndexGraph | None:
    if reader.window.bounded:
        return None
    covered = covers(reader)
    rooms: dict[str | None, tuple[LogDir, Store, dict[int, LogFile]]] = {}
    for source in reader.sources:
        try:
            entries = select_files(source.path)
        except OSError:
            return None
        store: Store | None = None
        files: dict[int, LogFile] = {}
        for entry in entries:
            found = covered.get(entry.path)
            if found is None or not _whole(entry, found.record.end):
                return None
            if store is not None and found.store is not store:
                return None
            store = found.store
            files[found.record.fid] = entry
        if store is None:
            continue  # no files: nothing of this room
        if len(files) != _files_in(store) or store.dupes():
            return None  # a row of a file the reader does not read; or an id twice
        rooms[source.room] = (source, store, files)
    return IndexGraph(reader, rooms)


def _whole(entry: LogFile, end: int) -> bool:
    if entry.compressed:
        return True  # a gzip's stamp was checked: indexed whole
    try:
        return os.stat(entry.path).st_size == end
    except OSError:
        return False


def _files_in(store: Store) -> int:
    for (count,) in ask(store, "SELECT count(*) FROM files"):
        return int(count)
    return 0
