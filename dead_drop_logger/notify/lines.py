"""The committed lines a rule has not read yet, and where it got to, as JSON.

Why it exists: a rule's position must survive a kill -9 and a reboot, so it is saved
with the rule's state. Messages are read through the shared feed
(:class:`..read.feed.Feed`: committed lines only, every room, rotation, compression,
retention and a restored directory followed, keys ``ROOM:ID``); the task and agent day
files, which the feed does not read, through the same :class:`..read.logread.Tail`
it wraps, with the same position format.

Polling is cheap while nothing changes: a :class:`DirWatch` looks at the directories
and their state files (a writer saves its state after every batch it commits; a room
made, a file compressed or pruned changes its directory), and the files are read only
when one changed, or every 30 s whatever it says.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..logdir import layout
from ..logdir.state import STATE_NAME
from ..read.feed import Feed, Position, at_end, sources
from ..read.logread import Reader, Tail, line_id

FULL_EVERY = 30.0  # seconds between two polls that read whatever the signature says
Saved = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Item:
    """One committed line: its room (None: the log directory itself), its bytes."""

    room: str | None
    raw: bytes
    file: Path

    @property
    def id(self) -> int | None:
        return line_id(self.raw)


def key_of(room: str | None, msg_id: object) -> str:
    """A message's key: ``ROOM:ID`` (``:ID`` for the main log), the feed's own."""
    return f"{room or ''}:{msg_id}"


Signature = tuple[tuple[int, ...], ...]


class DirWatch:
    """What tells, in a few ``stat`` calls, that a log directory may hold new committed
    lines: the directory and each of its (not hidden) subdirectories, and the state
    file of each. A writer saves its state after every batch it commits; a room made,
    a lock file created, a file compressed or pruned changes a directory. The list of
    subdirectories is read again only when the log directory itself changed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.top: tuple[int, int] | None = None
        self.subdirs: list[Path] = []

    def signature(self) -> Signature | None:
        """None when no directory has a state file (nothing tells but reading)."""
        try:
            top = os.stat(self.log_dir)
        except OSError:
            return ((0,),)  # not there yet: a directory made later changes this
        mark = (top.st_ino, top.st_mtime_ns)
        if mark != self.top:
            self.top = mark
            try:
                self.subdirs = sorted(
                    p
                    for p in self.log_dir.iterdir()
                    if not p.name.startswith(".") and p.is_dir() and not p.is_symlink()
                )
            except OSError:
                self.subdirs = []
        found: list[tuple[int, ...]] = [mark]
        states = 0
        for path in (self.log_dir, *self.subdirs):
            try:
                folder = os.stat(path)
            except OSError:
                found.append((0,))
                continue
            try:
                st = os.stat(path / STATE_NAME)
            except OSError:
                found.append((folder.st_ino, folder.st_mtime_ns))
                continue
            states += 1
            found.append((folder.st_mtime_ns, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(found) if states else None


class Lines:
    """Reads one kind of day file (messages, tasks, agents) of a log directory and its
    rooms (``rooms``: only those; empty: all, and the log directory itself). Without a
    saved position it starts at the end of what is committed now (messages: the feed's
    :func:`..read.feed.at_end`; tasks and agents: their first poll read through)."""

    def __init__(
        self,
        log_dir: Path,
        kind: str = layout.MESSAGES,
        rooms: tuple[str, ...] = (),
        saved: Saved | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.kind = kind
        self.rooms = rooms
        if saved is not None:
            position = Position.from_json(log_dir, json.dumps(saved).encode())
        elif kind == layout.MESSAGES:
            position = at_end(log_dir)
        else:
            position = Position(log_dir)  # its first poll reads through (see poll)
        self.feed: Feed | None = None
        self.tail: Tail | None = None
        if kind == layout.MESSAGES:
            self.feed = Feed(log_dir, position)
        else:
            self.tail = Tail(
                Reader(sources(log_dir), kind=kind),
                position.positions,
                position.finished,
                position.last,
            )
        self.position_data = position
        self.skip = saved is None and kind != layout.MESSAGES  # the feed's at_end is messages'
        self.watch = DirWatch(log_dir)
        self.signature: Signature | None = None
        self.full_at = 0.0

    def poll(self) -> Iterator[Item]:
        """The committed lines added since the last poll."""
        now = time.monotonic()
        signature = self.watch.signature()
        if now - self.full_at < FULL_EVERY:
            if signature is not None and signature == self.signature:
                return
        else:
            self.full_at = now
        self.signature = signature
        wanted = set(self.rooms)
        skip, self.skip = self.skip, False
        for room, raw, path in self._lines():
            if skip or (wanted and room not in wanted):
                continue
            yield Item(room, raw, path)

    def _lines(self) -> Iterator[tuple[str | None, bytes, Path]]:
        if self.feed is not None:
            for line in self.feed.poll():
                yield line.room, line.raw, line.file.path
            return
        assert self.tail is not None
        self.tail.reader = Reader(sources(self.log_dir), kind=self.kind)
        for chunk in self.tail.poll():
            for raw in chunk.lines():
                yield chunk.source.room, raw, chunk.file.path

    @property
    def position(self) -> Saved:
        data: Saved = json.loads(self.position_data.to_json())
        return data
