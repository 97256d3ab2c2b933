"""Writing encrypted: every chunk a new sealed age segment, and the unsealed tail in memory.

Why it looks like this: an age file cannot be appended to, and the unsealed tail of a
log must never reach the disk in plaintext. So, with ``encrypt_to``:

- :class:`SegmentWriter` replaces the day writer. A batch's lines for one file become a
  new segment (``messages-DAY.NNNNNN.json.age``, numbered past the day's highest part),
  written whole by :func:`..crypt.segments.write_segment`. The two-step commit is the
  plain one: the batch's pending record names each new segment as absent (size 0), the
  segment is written and fsynced, then the state records its lines as logged. A crash
  in between leaves a segment the pending record says is not there: the next
  transaction removes it (rather than truncating it to an empty, invalid age file) and
  the lines are read again from the database.
- :class:`Unsealed` is what the follower has read from the database and not yet sealed:
  its rows, in memory only, ahead of the state's position. The state's position never
  passes a line whose segment is not sealed and fsynced, so after a crash (or a stop that
  could not seal) the tail is simply read again from the database. It is sealed at
  ``SEAL_BYTES`` (1 MiB) or ``SEAL_SECONDS`` (60 s) after its first line, whichever
  comes first, at midnight, when the follower stops or lets its database go, and before
  anything could make the database's rows differ from what was read (a replaced file).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..clock import Clock, today
from ..crypt import segments
from ..files import fsync_dir
from ..logdir import layout
from ..logdir import ranges as idranges
from .source import Run
from .writer import Chunk, DayWriter, Ends, Pending, WriteError, _reason

log = logging.getLogger(__name__)

SEAL_BYTES = 1 << 20
SEAL_SECONDS = 60.0


class SegmentWriter(DayWriter):
    """Writes each chunk of a batch as a new sealed segment (see the module doc)."""

    def __init__(
        self,
        log_dir: Path,
        clock: Clock,
        recipients: Sequence[str],
        *,
        utc: bool = False,
        seal_bytes: int = SEAL_BYTES,
        compress_after: int | None = None,
    ) -> None:
        super().__init__(log_dir, clock, utc=utc, max_bytes=None)
        self.recipients = tuple(recipients)
        self.seal_bytes = seal_bytes
        self.compress_after = compress_after
        self._next: dict[tuple[str, str], int] = {}  # (kind, day) -> next number, as known

    # -- naming ------------------------------------------------------------------------

    def _number(self, kind: str, day: str) -> int:
        """A segment number of ``day`` that no file of it has (past its highest part)."""
        number = self._next.get((kind, day))
        if number is None or self._taken(kind, day, number):
            parts = [
                f.part for f in layout.log_files(self.log_dir, (kind,)) if f.day.isoformat() == day
            ]
            number = max(parts, default=0) + 1
            while self._taken(kind, day, number):  # (a temporary left, say)
                number += 1
        self._next[(kind, day)] = number + 1
        return number

    def _taken(self, kind: str, day: str, number: int) -> bool:
        return any(
            os.path.lexists(path)
            for path in (
                layout.segment_path(self.log_dir, day, number, kind),
                layout.segment_path(self.log_dir, day, number, kind, gzipped=True),
                layout.day_path(self.log_dir, day, number, kind),
            )
        )

    def _gzipped(self, day: str) -> bool:
        """A day old enough for compression is gzipped before it is sealed (encrypted
        bytes do not compress, and the logger holds no key to open it again later)."""
        if self.compress_after is None:
            return False
        oldest_plain = today(self.clock, self.utc) - dt.timedelta(days=self.compress_after)
        try:
            return dt.date.fromisoformat(day) < oldest_plain
        except ValueError:
            return False

    def _segments(self, kind: str, day: str, data: bytes) -> list[Chunk]:
        """``data`` (whole lines of one day) cut into segments of about ``seal_bytes``."""
        chunks: list[Chunk] = []
        start = 0
        while start < len(data):
            end = len(data)
            if end - start > self.seal_bytes:
                cut = data.rfind(b"\n", start, start + self.seal_bytes)
                end = cut + 1 if cut >= start else data.index(b"\n", start) + 1
            path = layout.segment_path(
                self.log_dir, day, self._number(kind, day), kind, gzipped=self._gzipped(day)
            )
            chunks.append(Chunk(path.name, data[start:end]))
            start = end
        return chunks

    def plan(self, runs: Sequence[Run]) -> list[Chunk]:
        fallback = today(self.clock, self.utc).isoformat()
        days: dict[str, list[bytes]] = {}
        for run in runs:
            days.setdefault(run.day or fallback, []).append(run.data)
        chunks: list[Chunk] = []
        for day, pieces in days.items():
            chunks += self._segments(layout.MESSAGES, day, b"".join(pieces))
        return chunks

    def place(self, chunks: Sequence[Chunk]) -> list[Chunk]:
        """Chunks named as plain day files (tasks, agents) renamed to new segments."""
        placed: list[Chunk] = []
        for chunk in chunks:
            entry = layout.parse(Path(chunk.name), layout.KINDS)
            if entry is None:
                raise ValueError(f"not a log file name: {chunk.name}")
            placed += self._segments(entry.kind, entry.day.isoformat(), chunk.data)
        return placed

    # -- the two-step commit -------------------------------------------------------------

    def sizes(self, chunks: Sequence[Chunk]) -> Pending:
        return {chunk.name: (0, 0) for chunk in chunks}  # new files, every one

    def ends(self, sizes: Pending) -> Ends:
        return {}

    def end_at(self, name: str, size: int) -> int | None:
        return None

    def ends_after(self, chunks: Sequence[Chunk]) -> Ends:
        return {}  # a segment is never appended to: nothing to recognise its end by

    def append(self, chunks: Sequence[Chunk], sizes: Pending, *, durable: bool = True) -> None:
        """Seal each chunk as its segment (always durable: fsynced, linked, the
        directory fsynced). On failure nothing of that segment stays; raises WriteError."""
        try:
            for chunk in chunks:
                path = self.log_dir / chunk.name
                try:
                    segments.write_segment(path, chunk.data, self.recipients, sync_dir=False)
                except FileExistsError:
                    raise WriteError(f"cannot write {path}: a file is already there") from None
                except OSError as exc:
                    raise WriteError(f"cannot write {path}: {_reason(exc)}") from None
            if chunks:  # every segment's name durable before the state records its lines
                try:
                    fsync_dir(self.log_dir)
                except OSError as exc:
                    raise WriteError(f"cannot write {self.log_dir}: {_reason(exc)}") from None
        except WriteError:
            self._next.clear()  # the numbers of segments not made are free again
            raise

    def sync(self) -> None:
        self.sync_failed = False

    def truncate_back(
        self, pending: Pending, ends: Ends | None = None, logged: idranges.Ranges | None = None
    ) -> None:
        """Remove the segments of an uncommitted batch (recorded as absent); a plain file
        in the record (a batch of a run without encryption) is cut back as ever."""
        plain: Pending = {}
        for name, recorded in pending.items():
            if "/" in name or name in ("", ".", ".."):
                continue
            entry = layout.parse(Path(name), layout.KINDS)
            if entry is None or not entry.encrypted:
                plain[name] = recorded
                continue
            path = self.log_dir / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                segments.remove_segment(path)  # (its temporary, if any)
                continue
            if stat.S_ISLNK(st.st_mode) or recorded[1]:
                continue  # not one this batch made
            log.warning("removing uncommitted segment %s (its lines are read again)", path)
            segments.remove_segment(path)
        if plain:
            super().truncate_back(plain, ends, logged)


@dataclass
class Unsealed:
    """Rows read from the database and not yet sealed: memory only (see module doc)."""

    base: int  # the state's position when the first row was read
    opened: float  # monotonic time of the first row
    day: dt.date  # today when it began (sealed at midnight)
    runs: list[Run] = field(default_factory=list)
    count: int = 0
    size: int = 0
    last_id: int = 0
    last_stamp: str | None = None
    skipped: idranges.Ranges = field(default_factory=list)

    def add(self, runs: Sequence[Run], count: int, last_id: int, stamp: str | None) -> None:
        self.runs.extend(runs)
        self.count += count
        self.size += sum(len(run.data) for run in runs)
        self.last_id, self.last_stamp = last_id, stamp

    def due(self, now: float, day: dt.date, seal_bytes: int, seal_seconds: float) -> bool:
        return self.size >= seal_bytes or now - self.opened >= seal_seconds or day != self.day


__all__ = ["SEAL_BYTES", "SEAL_SECONDS", "SegmentWriter", "Unsealed"]
