"""The day-file writer: routes lines into ``messages-YYYY-MM-DD.json`` and appends them.

Files are opened by path for every batch (``O_APPEND``), written in full, fsynced and
closed. Reopening each time means a day file deleted or renamed under the logger (by a
user, by logrotate) is simply created afresh at the right path on the next batch. A
batch of a held transaction (:mod:`.groupcommit`) may leave the fsync to :meth:`sync`,
which runs before the next state save: until then the pending record on disk covers it.

A failed write is undone here and now: the file is truncated back to where the batch
began, so no partial line is ever left behind, and the error is raised for the caller
to retry. Crash recovery uses the same truncation (see :mod:`.state`).

A file is known by what it holds, not by its inode, because a copy of the log directory
(``cp -a``, rsync, tar, a restore, a move to another file system) has new inodes and
must still be cut back only to what its state records: :meth:`DayWriter.ends` gives the
id of the line ending at each recorded size, and :meth:`DayWriter.truncate_back` cuts a
file back only when that line is still there (or, for a record without it, the file is
the same inode, or its line there is recorded as logged). A file created afresh by the
batch (the old one renamed away meanwhile) holds only unlogged lines and is emptied; a
file matching nothing is left alone, with one warning.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..clock import Clock, today
from ..crypt.keys import MARKER
from ..files import fsync_dir, is_symlink_error, open_private, write_all
from ..logdir import layout
from ..logdir import ranges as idranges
from . import rotation
from .source import Run

log = logging.getLogger(__name__)


Pending = dict[str, tuple[int, int]]
"""File name -> (size, inode) before an uncommitted batch; inode 0: the file did not exist."""

Ends = dict[str, tuple[int, int]]
"""File name -> (size, id of the line ending there): what a file holds of logged lines."""

_ID = re.compile(rb'\{"id":(-?[0-9]+)[,}]')
_BLOCK = 4096


def _recorded_size(inode: int, recorded: tuple[int, int]) -> int:
    """What a file held before the batch: its recorded size if it is the same file."""
    size, recorded_inode = recorded
    return size if inode == recorded_inode else 0


def _base_size(fd: int, recorded: tuple[int, int]) -> int:
    return _recorded_size(os.fstat(fd).st_ino, recorded)


def line_id(line: bytes) -> int | None:
    """The id of one log line (without its newline); None if it has none."""
    match = _ID.match(line)
    if match is not None:
        return int(match.group(1))
    try:
        value = json.loads(line)["id"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def last_line_id(data: bytes) -> int | None:
    """The id of the last line of ``data`` (whole lines)."""
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    return line_id(data[start:-1])


def line_id_ending_at(path: Path, size: int) -> int | None:
    """The id of the whole line ending at byte ``size`` of ``path`` (None: no line ends
    there, the file is shorter, or the line has no id). Never through a symlink."""
    if size <= 0:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < size or os.pread(fd, 1, size - 1) != b"\n":
            return None
        pos, parts = size - 1, []
        while pos > 0:
            step = min(_BLOCK, pos)
            block = os.pread(fd, step, pos - step)
            cut = block.rfind(b"\n")
            parts.append(block[cut + 1 :])
            if cut >= 0:
                break
            pos -= step
    except OSError:
        return None
    finally:
        os.close(fd)
    return line_id(b"".join(reversed(parts)))


def _holds_logged(path: Path, logged: idranges.Ranges) -> bool:
    """Whether any whole line of ``path`` has an id recorded as logged."""
    if not logged:
        return False
    try:
        with open(path, "rb") as fh:
            for line in fh:
                found = line_id(line.rstrip(b"\n")) if line.endswith(b"\n") else None
                if found is not None and idranges.within(logged, found, found):
                    return True
    except OSError:
        return True  # unreadable: not known to be the batch's alone
    return False


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
        # (name, inode) -> a descriptor of each file appended to without an fsync, in
        # order: fsynced through it, so a file renamed away (logrotate, a user's mv)
        # before the sync is still made durable, not the one now at its name
        self._unsynced: dict[tuple[str, int], int] = {}
        # name -> (size, inode, id of its last line) after this writer's last append to
        # it: the identity of the end a pending record or ``ends`` names, without a read
        self._last: dict[str, tuple[int, int, int]] = {}
        self._mtimes: dict[str, int] = {}  # ... and its modification time then
        self._new_entry = False  # ... and a file created: the directory too
        self.sync_failed = False  # the last sync's fsync failed (see groupcommit)
        self.touched: set[str] = set()  # files appended to or cut back (see copies.relook)
        # name -> (byte the last append's lines landed at, the size recorded before it),
        # for each file where the two differ: another process wrote it in between (a
        # restore copied over it, a rotation): see :meth:`append`
        self.misplaced: dict[str, tuple[int, int]] = {}

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

    def place(self, chunks: Sequence[Chunk]) -> list[Chunk]:
        """The files ``chunks`` (named as plain day files) go to: those (see
        :meth:`.sealed.SegmentWriter.place`, which makes each a new segment)."""
        return list(chunks)

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

    def ends(self, sizes: Pending) -> Ends:
        """The identity of the files at ``sizes`` (a plan's pending record): the id of
        the line ending at each recorded size, where one does (see module doc)."""
        result: Ends = {}
        for name, (size, inode) in sizes.items():
            if size <= 0:
                continue
            known = self._last.get(name)
            if known is not None and known[:2] == (size, inode):
                last: int | None = known[2]
            else:  # written by another process (or before this one started): read it
                last = line_id_ending_at(self.log_dir / name, size)
            if last is not None:
                result[name] = (size, last)
        return result

    def end_at(self, name: str, size: int) -> int | None:
        """The id of the line ending at byte ``size`` of file ``name`` (this writer's
        last append, when it ended there and the file is that one: no read)."""
        known = self._last.get(name)
        if known is not None and known[0] == size:
            try:
                st = os.lstat(self.log_dir / name)
            except OSError:
                return None
            # untouched since (anything written over it, by a copy, changes its mtime)
            if (st.st_ino, st.st_size, st.st_mtime_ns) == (known[1], size, self._mtimes.get(name)):
                return known[2]
        return line_id_ending_at(self.log_dir / name, size)

    def ends_after(self, chunks: Sequence[Chunk]) -> Ends:
        """What :meth:`append` left at the end of each chunk's file."""
        result: Ends = {}
        for chunk in chunks:
            if chunk.name in self._last:
                size, _inode, last = self._last[chunk.name]
                result[chunk.name] = (size, last)
        return result

    def append(self, chunks: Sequence[Chunk], sizes: Pending, *, durable: bool = True) -> None:
        """Append each chunk and fsync it; on failure, undo that file and raise.

        ``durable=False``: leave the fsyncs to :meth:`sync` (the caller's pending record
        on disk covers these files until then)."""
        created = False
        self.misplaced = {}
        if chunks and os.path.lexists(self.log_dir / MARKER):
            raise WriteError(
                f"{self.log_dir} is written encrypted ({MARKER}): no plaintext goes into it;"
                " give --encrypt-to (or encrypt_to), or remove that file to write plain files"
            )
        for chunk in chunks:
            path = self.log_dir / chunk.name
            try:
                fd = _open_append(path)
            except OSError as exc:
                raise WriteError(f"cannot open {path}: {exc.strerror}") from None
            self.touched.add(chunk.name)
            try:
                created = created or sizes.get(chunk.name, (0, 0))[0] == 0
                write_all(fd, chunk.data)
                # Where the lines landed (O_APPEND: at the end of the file as it was
                # then): not at the size measured before the batch means the file was
                # rewritten between that measure (and the check of what it holds) and
                # this write, by someone not holding the lock. Its end is then this
                # batch's line, so no later check of the end tells: the caller must.
                end = os.lseek(fd, 0, os.SEEK_CUR)
                landed = end - len(chunk.data)
                st = os.fstat(fd)
                expected = _recorded_size(st.st_ino, sizes.get(chunk.name, (0, 0)))
                if landed != expected:
                    self.misplaced[chunk.name] = (landed, expected)
                last = last_line_id(chunk.data)
                if last is not None:
                    self._last[chunk.name] = (end, st.st_ino, last)
                    self._mtimes[chunk.name] = st.st_mtime_ns
                if durable:
                    os.fsync(fd)
                elif (chunk.name, st.st_ino) not in self._unsynced:
                    self._unsynced[chunk.name, st.st_ino] = os.dup(fd)
            except OSError as exc:
                self._last.pop(chunk.name, None)
                self._undo(fd, path, _base_size(fd, sizes.get(chunk.name, (0, 0))))
                raise WriteError(f"cannot write {path}: {_reason(exc)}") from None
            finally:
                os.close(fd)
        if created and durable:
            fsync_dir(self.log_dir)
        elif created:
            self._new_entry = True

    def rewritten(self, found: dict[str, tuple[int, int, int]]) -> str | None:
        """A file this writer appended to since :attr:`touched` was cleared that is no
        longer as its last append left it (``found``: name -> (inode, size, modification
        time) now, see :func:`.copies.look`), and holds something: another process wrote
        it after the append (a restore copied over it). None when there is none (a file
        only emptied or gone is a rotation's or a user's, not a restore's)."""
        for name in self.touched:
            known = self._last.get(name)
            now = found.get(name)
            if known is None or now is None or not now[1]:
                continue
            if now != (known[1], known[0], self._mtimes.get(name)):
                return name
        return None

    def sync(self) -> None:
        """Make durable what :meth:`append` wrote with ``durable=False``. Raises
        WriteError (the lines stay covered by the pending record on disk)."""
        self.sync_failed = False
        for key, fd in list(self._unsynced.items()):
            try:
                os.fsync(fd)
            except OSError as exc:
                self.sync_failed = True
                raise WriteError(f"cannot write {self.log_dir / key[0]}: {_reason(exc)}") from None
            del self._unsynced[key]
            os.close(fd)
        if self._new_entry:
            try:
                fsync_dir(self.log_dir)
            except OSError as exc:  # as a file's: a second try could succeed falsely
                self.sync_failed = True
                raise WriteError(f"cannot write {self.log_dir}: {_reason(exc)}") from None
            self._new_entry = False

    def _forget_unsynced(self, name: str) -> None:
        for key in [key for key in self._unsynced if key[0] == name]:
            os.close(self._unsynced.pop(key))

    def close(self) -> None:
        """Let go of the descriptors kept for :meth:`sync` (what they hold unsynced is
        covered by the pending record on disk: cut back and read again)."""
        for key in list(self._unsynced):
            os.close(self._unsynced.pop(key))

    @staticmethod
    def _undo(fd: int, path: Path, size: int) -> None:
        try:
            if os.fstat(fd).st_size <= size:  # never extend (that would write NULs)
                return
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:  # the pending record still guards it on the next batch
            log.warning("could not truncate %s back to %d bytes: %s", path, size, exc)

    def truncate_back(
        self, pending: Pending, ends: Ends | None = None, logged: idranges.Ranges | None = None
    ) -> None:
        """Remove an uncommitted batch: cut each file back to its recorded size, when it
        is the file recorded (``ends``: the id of the line ending there; ``logged``: the
        ids the state records as logged), or to 0 when the batch created it afresh (it
        holds no logged line). A file that is neither is left alone, with a warning."""
        for name, recorded in pending.items():
            if "/" in name or name in ("", ".", ".."):  # (the state refuses these)
                continue
            path = self.log_dir / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):  # not a file the batch wrote: never through it
                continue
            size, inode = recorded
            if st.st_size <= size and st.st_ino == inode:
                continue  # nothing past the record
            cut = self._cut_point(path, st, recorded, (ends or {}).get(name), logged or [])
            if cut is None:
                log.warning(
                    "%s does not hold what the state records of it (%s; found %s);"
                    " not cutting it back",
                    path,
                    _described(recorded, (ends or {}).get(name)),
                    _found(path, st, size),
                )
                continue
            if st.st_size <= cut:
                continue
            log.warning("removing %d uncommitted bytes from %s", st.st_size - cut, path)
            self.touched.add(name)
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, cut)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._forget_unsynced(name)  # what is left of it was durable already
            self._last.pop(name, None)

    @staticmethod
    def _cut_point(
        path: Path,
        st: os.stat_result,
        recorded: tuple[int, int],
        end: tuple[int, int] | None,
        logged: idranges.Ranges,
    ) -> int | None:
        """Where a pending file is cut back to; None: it is not the file recorded."""
        size, inode = recorded
        if size == 0:
            return 0  # it did not exist (or was empty): all of it is the batch's
        at = line_id_ending_at(path, size)
        if end is not None and end[0] == size:
            if at == end[1]:
                return size  # the same lines up to the record: this file or a copy of it
        elif st.st_ino == inode:
            return size  # a record without the line's id (an older version's): the inode
        elif at is not None and idranges.within(logged, at, at):
            return size  # ... or a logged line ends there (a copy of that file)
        if st.st_ino != inode and not _holds_logged(path, logged):
            return 0  # made afresh by the batch (the old file renamed away meanwhile)
        return None


def _found(path: Path, st: os.stat_result, size: int) -> str:
    """What a file holds where its record says the logged lines end."""
    at = line_id_ending_at(path, size)
    there = f"message {at} ending there" if at is not None else "no line ending there"
    return f"{st.st_size} bytes, inode {st.st_ino}, {there}"


def _described(recorded: tuple[int, int], end: tuple[int, int] | None) -> str:
    size = recorded[0]
    if end is not None and end[0] == size:
        return f"message {end[1]} ending at byte {size}"
    return f"{size} bytes, inode {recorded[1]}"
