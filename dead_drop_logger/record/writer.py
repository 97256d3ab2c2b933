"""The day-file writer: routes lines into ``messages-YYYY-MM-DD.json`` and appends them.

Files are opened by path for every batch (``O_APPEND``), written in full, fsynced and
closed. Reopening each time means a day file deleted or renamed under the logger (by a
user, by logrotate) is simply created afresh at the right path on the next batch. A
batch of a held transaction (:mod:`.groupcommit`) may leave the fsync to :meth:`sync`,
which runs before the next state save: until then the pending record on disk covers it.

A failed write is undone here and now: the file is truncated back to where the batch
began, so no partial line is ever left behind, and the error is raised for the caller
to retry. Crash recovery uses the same truncation (see :mod:`.state`).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..clock import Clock, today
from ..files import fsync_dir, is_symlink_error, open_private, write_all
from ..logdir import layout
from . import rotation
from .source import Run

log = logging.getLogger(__name__)


Pending = dict[str, tuple[int, int]]
"""File name -> (size, inode) before an uncommitted batch; inode 0: the file did not exist."""


def _recorded_size(inode: int, recorded: tuple[int, int]) -> int:
    """What a file held before the batch: its recorded size if it is the same file."""
    size, recorded_inode = recorded
    return size if inode == recorded_inode else 0


def _base_size(fd: int, recorded: tuple[int, int]) -> int:
    return _recorded_size(os.fstat(fd).st_ino, recorded)


def _open_append(path: Path) -> int:
    """Open a day file for appending, creating it. A symlink in its place (planted, or
    left by a user) is never written through: it is replaced by a new file."""
    try:
        return open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except OSError as exc:
        if not is_symlink_error(exc):
            raise
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    os.unlink(path)
    log.warning("%s was a symbolic link (to %s); replaced it by a new file", path, target)
    return open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def _reason(exc: OSError) -> str:
    return {errno.ENOSPC: "disk full", errno.EFBIG: "file too large"}.get(
        exc.errno or 0, exc.strerror or str(exc)
    )


class WriteError(Exception):
    """Appending to a log file failed; nothing of the batch stays in that file."""


@dataclass
class Chunk:
    """The lines of one batch that go to one file, in id order."""

    name: str
    data: bytes


class DayWriter:
    """Appends batches of rows to the day files of one log directory."""

    def __init__(
        self, log_dir: Path, clock: Clock, *, utc: bool = False, max_bytes: int | None = None
    ) -> None:
        self.log_dir = log_dir
        self.clock = clock
        self.utc = utc
        self.max_bytes = max_bytes
        self.parts = rotation.Parts(log_dir)  # the directory's parts, without listing it
        self._unsynced: dict[str, None] = {}  # appended without an fsync, in order
        self._new_entry = False  # ... and a file created: the directory too
        self.sync_failed = False  # the last sync's fsync failed (see groupcommit)

    def plan(self, runs: Sequence[Run]) -> list[Chunk]:
        """Group runs by their file (day, then part: see :mod:`.rotation`), keeping id
        order inside each file."""
        fallback = today(self.clock, self.utc).isoformat()
        days: dict[str, list[Run]] = {}
        for run in runs:
            days.setdefault(run.day or fallback, []).append(run)
        chunks: list[Chunk] = []
        for day, group in days.items():
            part, size = self.parts.open_part(day)
            data = b"".join(r.data for r in group)
            if self.max_bytes is None:
                self.parts.wrote(day, part)
                chunks.append(Chunk(layout.day_path(self.log_dir, day, part).name, data))
                continue
            lines = data.split(b"\n")[:-1]  # JSON has no raw newline: one per line
            lengths = [len(line) + 1 for line in lines]
            for number, start, end in rotation.split_parts(lengths, part, size, self.max_bytes):
                self.parts.wrote(day, number)
                name = layout.day_path(self.log_dir, day, number).name
                chunks.append(Chunk(name, b"".join(line + b"\n" for line in lines[start:end])))
        return chunks

    def sizes(self, chunks: Sequence[Chunk]) -> Pending:
        """Size and inode of each file a plan will append to ((0, 0) if it does not exist).

        The inode tells, after a crash, a file that was replaced (deleted or renamed,
        then created afresh by the batch) from the one whose size was recorded.
        """
        result: Pending = {}
        for chunk in chunks:
            try:
                st = (self.log_dir / chunk.name).lstat()
            except FileNotFoundError:
                st = None
            # a symlink is replaced by a new file (see append): as good as absent
            if st is None or stat.S_ISLNK(st.st_mode):
                result[chunk.name] = (0, 0)
            else:
                result[chunk.name] = (st.st_size, st.st_ino)
        return result

    def append(self, chunks: Sequence[Chunk], sizes: Pending, *, durable: bool = True) -> None:
        """Append each chunk and fsync it; on failure, undo that file and raise.

        ``durable=False``: leave the fsyncs to :meth:`sync` (the caller's pending record
        on disk covers these files until then)."""
        created = False
        for chunk in chunks:
            path = self.log_dir / chunk.name
            try:
                fd = _open_append(path)
            except OSError as exc:
                raise WriteError(f"cannot open {path}: {exc.strerror}") from None
            try:
                created = created or sizes.get(chunk.name, (0, 0))[0] == 0
                write_all(fd, chunk.data)
                if durable:
                    os.fsync(fd)
                else:
                    self._unsynced[chunk.name] = None
            except OSError as exc:
                self._undo(fd, path, _base_size(fd, sizes.get(chunk.name, (0, 0))))
                raise WriteError(f"cannot write {path}: {_reason(exc)}") from None
            finally:
                os.close(fd)
        if created and durable:
            fsync_dir(self.log_dir)
        elif created:
            self._new_entry = True

    def sync(self) -> None:
        """Make durable what :meth:`append` wrote with ``durable=False``. Raises
        WriteError (the lines stay covered by the pending record on disk)."""
        self.sync_failed = False
        for name in list(self._unsynced):
            path = self.log_dir / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:  # deleted since (by a user): nothing to keep
                del self._unsynced[name]
                continue
            except OSError as exc:
                raise WriteError(f"cannot open {path}: {exc.strerror}") from None
            try:
                os.fsync(fd)
            except OSError as exc:
                self.sync_failed = True
                raise WriteError(f"cannot write {path}: {_reason(exc)}") from None
            finally:
                os.close(fd)
            del self._unsynced[name]
        if self._new_entry:
            fsync_dir(self.log_dir)
            self._new_entry = False

    @staticmethod
    def _undo(fd: int, path: Path, size: int) -> None:
        try:
            if os.fstat(fd).st_size <= size:  # never extend (that would write NULs)
                return
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:  # the pending record still guards it on the next batch
            log.warning("could not truncate %s back to %d bytes: %s", path, size, exc)

    def truncate_back(self, pending: Pending) -> None:
        """Remove an uncommitted batch: cut each file back to its recorded size (to 0 when
        the file is not the one recorded: the batch created it afresh)."""
        for name, recorded in pending.items():
            path = self.log_dir / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):  # not a file the batch wrote: never through it
                continue
            current, size = st.st_size, _recorded_size(st.st_ino, recorded)
            if current <= size:
                continue
            log.warning("removing %d uncommitted bytes from %s", current - size, path)
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._unsynced.pop(name, None)  # what is left of it was durable already
