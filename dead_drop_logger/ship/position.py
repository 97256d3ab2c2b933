"""A sink's durable position: what it has acknowledged, saved after each batch.

Why it looks like this:
- Where reading got to is the shared feed's :class:`..read.feed.Position` (per file,
  the last line delivered recognised by its id and first bytes, never a byte offset or
  an inode alone), so rotation, compression, retention and a restored directory are
  followed as every reader follows them.
- It is saved (write, fsync, rename, fsync the directory) only after the sink has
  acknowledged every line before it: a ``kill -9`` at any moment repeats at most the
  batch in flight, which the sink drops by its key. Saved before the acknowledgement,
  a crash would lose lines; so it never is.
- Each room carries a *generation* (:class:`Generations`): a room whose database was
  replaced starts its ids again from 1 in the same log (the state's ``resets``), so
  ``ROOM:ID`` alone would collide at the sink with the first database's line and be
  dropped there as a duplicate. A line of a later generation is keyed ``ROOM:ID@GEN``.
  The generation is part of the position, saved with it, so a repeated batch gets the
  same keys as the first time.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import replace_durably
from ..logdir.state import read_state_file
from ..read.feed import FeedLine, Position

FORMAT = 1


def key_of(room: str | None, msg_id: int, generation: int) -> str:
    """What a sink deduplicates by: ``ROOM:ID`` (``:ID`` for the main log), and
    ``ROOM:ID@GEN`` for a room's lines after its database was replaced."""
    base = f"{room or ''}:{msg_id}"
    return base if generation == 0 else f"{base}@{generation}"


@dataclass(frozen=True, slots=True)
class Item:
    """One line to deliver."""

    room: str | None
    id: int
    generation: int
    raw: bytes  # the logged line, with its newline

    @property
    def key(self) -> str:
        return key_of(self.room, self.id, self.generation)


@dataclass
class RoomMark:
    """A room's generation, the state's ``resets`` when it was set, and the ids read in
    it (sorted, disjoint, inclusive ranges: a room's ids are nearly contiguous)."""

    generation: int = 0
    resets: int = 0
    ids: list[list[int]] = field(default_factory=list)

    def has(self, msg_id: int) -> bool:
        ids = self.ids
        if ids and ids[-1][0] <= msg_id <= ids[-1][1]:
            return True
        at = bisect.bisect_right(ids, [msg_id, math.inf]) - 1
        return at >= 0 and ids[at][0] <= msg_id <= ids[at][1]

    def add(self, msg_id: int) -> None:
        ids = self.ids
        if ids and ids[-1][1] + 1 == msg_id:  # the usual case: the next id
            ids[-1][1] = msg_id
            return
        if ids and ids[-1][1] < msg_id:
            ids.append([msg_id, msg_id])
            return
        at = bisect.bisect_right(ids, [msg_id, math.inf])
        ids.insert(at, [msg_id, msg_id])
        # merge with the neighbours it touches
        lo = max(at - 1, 0)
        merged: list[list[int]] = []
        for low, high in ids[lo : at + 2]:
            if merged and low <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        ids[lo : at + 2] = merged


@dataclass
class Generations:
    """Each room's generation, moved on where the room's log starts over.

    A room's log starts over when its database is replaced: ids already read come
    again, and the room's state counts one more ``resets``. Both are needed: ids merely
    going down happens across midnight too (a message stamped 23:59:59.999 committed
    after one stamped 00:00:00.001 is read from yesterday's file first, and is new),
    and an id read again with the resets unchanged is not a new message (it keeps its
    key, and the sink drops it as the duplicate it is)."""

    log_dir: Path
    rooms: dict[str | None, RoomMark] = field(default_factory=dict)

    def item(self, line: FeedLine) -> Item | None:
        """The line as an item to deliver (None: not a message line: no id)."""
        if line.id is None:
            return None
        mark = self.rooms.get(line.room)
        if mark is None:
            mark = self.rooms[line.room] = RoomMark()
        if mark.has(line.id):
            resets = self._resets(line.room)
            if resets > mark.resets:
                mark.generation += 1
                mark.resets = resets
                mark.ids = []
        mark.add(line.id)
        return Item(line.room, line.id, mark.generation, line.raw)

    def _resets(self, room: str | None) -> int:
        directory = self.log_dir / room if room else self.log_dir
        try:
            state, _copied = read_state_file(directory)
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return int(state.resets)

    def to_json(self) -> list[dict[str, object]]:
        return [
            {"room": room, "generation": m.generation, "resets": m.resets, "ids": m.ids}
            for room, m in sorted(self.rooms.items(), key=lambda item: item[0] or "")
        ]

    @classmethod
    def from_json(cls, log_dir: Path, value: list[dict[str, Any]]) -> Generations:
        rooms: dict[str | None, RoomMark] = {}
        for entry in value:
            room = entry["room"]
            if room is not None and not isinstance(room, str):
                raise ValueError(f"bad room {room!r}")
            ids = [[int(low), int(high)] for low, high in entry["ids"]]
            rooms[room] = RoomMark(int(entry["generation"]), int(entry["resets"]), ids)
        return cls(log_dir, rooms)

    def copy(self) -> Generations:
        return Generations(
            self.log_dir,
            {
                room: RoomMark(m.generation, m.resets, [list(r) for r in m.ids])
                for room, m in self.rooms.items()
            },
        )


@dataclass
class ShipPosition:
    """What one sink has acknowledged: the feed's position, the rooms' generations,
    and how many lines in all (for status)."""

    feed: Position
    generations: Generations
    shipped: int = 0

    def to_json(self) -> bytes:
        value = {
            "format": FORMAT,
            "feed": json.loads(self.feed.to_json()),
            "generations": self.generations.to_json(),
            "shipped": self.shipped,
        }
        return json.dumps(value, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, log_dir: Path, data: bytes) -> ShipPosition:
        try:
            value = json.loads(data)
            if value.get("format") != FORMAT:
                raise ValueError(f"unknown format {value.get('format')!r}")
            feed = Position.from_json(log_dir, json.dumps(value["feed"]).encode())
            generations = Generations.from_json(log_dir, value["generations"])
            return cls(feed, generations, int(value["shipped"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a ship position: {exc!r}") from None

    @classmethod
    def start(cls, log_dir: Path) -> ShipPosition:
        return cls(Position(log_dir), Generations(log_dir))

    def copy(self) -> ShipPosition:
        return ShipPosition(self.feed.copy(), self.generations.copy(), self.shipped)


def load(path: Path, log_dir: Path) -> ShipPosition | None:
    """The position saved at ``path`` (None: none yet; ValueError: not a position)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return ShipPosition.from_json(log_dir, data)


def save(path: Path, position: ShipPosition) -> None:
    replace_durably(path, position.to_json())
