"""The committed lines a rule has not read yet, and where it got to, as JSON.

Why it exists: a rule's position must survive a kill -9 and a reboot, so it is saved
with the rule's state; this is the one place that turns the readers' :class:`Tail`
(which reads only committed lines, follows rotation, compression, retention and a
restored directory) into something saved and loaded. Rooms created after the start
are picked up at each poll. The shared feed (read/feed.py) will take its place.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..logdir import layout
from ..logdir.state import STATE_NAME
from ..read.logread import LogDir, Reader, Tail, line_id

Position = dict[str, Any]
FULL_EVERY = 1.0  # seconds between two polls that read whatever the state files say


@dataclass(frozen=True, slots=True)
class Item:
    """One committed line: its room (None: the log directory itself), its bytes."""

    room: str | None
    raw: bytes
    file: Path

    @property
    def id(self) -> int | None:
        return line_id(self.raw)


def key_of(room: str | None, msg_id: int | None) -> str:
    """A message's key: ``room:id`` (the log directory itself has the empty room)."""
    return f"{room or ''}:{msg_id}"


class Lines:
    """Reads one kind of day file (messages, tasks, agents) of a log directory and its
    rooms (``rooms``: only those; empty: all)."""

    def __init__(
        self,
        log_dir: Path,
        kind: str = layout.MESSAGES,
        rooms: tuple[str, ...] = (),
        position: Position | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.kind = kind
        self.rooms = rooms
        self.tail = Tail(Reader(self._sources(), kind=kind))
        self.started = position is not None
        self.signature: tuple[tuple[int, int, int], ...] | None = None
        self.full_at = 0.0
        if position is not None:
            self._load(position)

    def _sources(self) -> list[LogDir]:
        found = [LogDir(path, path.name) for path in layout.room_dirs(self.log_dir)]
        if self.rooms:
            return [source for source in found if source.room in self.rooms]
        return [LogDir(self.log_dir), *found]

    def _signature(self) -> tuple[tuple[int, int, int], ...] | None:
        """The state file of each directory read (inode, change time, size): a writer
        saves it after every batch it commits, so while it is unchanged nothing new is
        committed. None when a directory has none (then only reading tells)."""
        found = []
        for source in self.tail.reader.sources:
            try:
                st = os.stat(source.path / STATE_NAME)
            except OSError:
                return None
            found.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(found)

    def poll(self) -> Iterator[Item]:
        """The committed lines added since the last poll (the first poll of a rule
        without a position skips what is there: a new rule starts at the end).

        Cheap when nothing changed: the directories' state files are looked at, and the
        files read only when one changed, or a second has passed (a new room, a file
        compressed or pruned)."""
        now = time.monotonic()
        if self.started and now - self.full_at < FULL_EVERY:
            signature = self._signature()
            if signature is not None and signature == self.signature:
                return
        else:
            self.full_at = now
            self.tail.reader.sources = self._sources()
        self.signature = self._signature()
        skip = not self.started
        self.started = True
        for chunk in self.tail.poll():
            if skip:
                continue
            room = chunk.source.room
            for raw in chunk.lines():
                yield Item(room, raw, chunk.file.path)

    @property
    def position(self) -> Position:
        files = []
        for (source, day, part), offset in self.tail.positions.items():
            last = self.tail.last.get((source, day, part))
            files.append(
                {
                    "room": source.room,
                    "day": day.isoformat(),
                    "part": part,
                    "offset": offset,
                    "finished": (source, day, part) in self.tail.finished,
                    "last": None
                    if last is None
                    else [last[0], base64.b64encode(last[1]).decode("ascii")],
                }
            )
        return {"kind": self.kind, "files": files}

    def _load(self, position: Position) -> None:
        for entry in position.get("files", []):
            room = entry.get("room")
            source = LogDir(self.log_dir / room, room) if room else LogDir(self.log_dir)
            key = (source, dt.date.fromisoformat(entry["day"]), int(entry["part"]))
            self.tail.positions[key] = int(entry["offset"])
            if entry.get("finished"):
                self.tail.finished.add(key)
            last = entry.get("last")
            if last:
                self.tail.last[key] = (int(last[0]), base64.b64decode(last[1]))
