"""The position store: what this log directory already holds, kept beside the logs.

The state lives in the log directory it describes (``.dead-drop-logger.state``), so a
fresh ``--log-dir`` starts afresh and two log directories never share a position.

Exactly-once rests on a two-step commit around every batch:

1. ``pending`` is saved: the size (and inode) of every file the batch will append to;
2. the lines are appended and fsynced;
3. the new position is saved with ``pending`` cleared.

Saving is write-temp, fsync, rename, fsync-dir, so the state on disk is always one
of the two versions. Whoever next takes the lock and finds ``pending`` set (after a
``kill -9``, a power loss or a failed write) truncates those files back to the
recorded sizes, which removes exactly the uncommitted batch and any torn line, and
the batch is read again from the database.

A file is known by what it holds, not by its inode: ``ends`` records, for the files
written last, the size up to which each holds logged lines and the id of the line
ending there. So a copy of the log directory (``cp -a``, rsync, tar, a restore, a move
to another file system: new inodes) is still recognised, and cut back only to what its
state records. The state also records where it was saved (the device, and the inodes of
its own file, of the directory and of its lock file): a state read elsewhere is a copy,
and so is one whose position went back under a running process (a backup copied over
the directory); its files are checked against ``ends`` before it is used (see
:mod:`..record.copies`).

Names read from the state are file names in the log directory, nothing else: a name
with a ``/``, ``..`` or an absolute one makes the state unusable (it is set aside and
rebuilt from the log files), and the state is never read through a symlink.

Every writer (the follower, ``--import-historical``, ``export_historical.py``) holds an
exclusive ``flock`` on ``.dead-drop-logger.lock`` for the length of one batch and
rereads the state under it, so they can run at the same time without doubling a line.
They take it in turn (:mod:`.dirlock`), so a follower never starves behind a backfill.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..files import create_private, fsync_dir, open_private
from . import ranges as idranges
from .dirlock import LOCK_NAME, PATIENCE, DirLock, LockTimeout

STATE_NAME = ".dead-drop-logger.state"
FORMAT = 1
LOCK_PATIENCE = PATIENCE
FIRST_START = "first start after id"
OWNER = "database "  # + the owner's record: a lock file line, like the first-start mark


class StateError(Exception):
    """The state file cannot be read or written."""


class DirectoryReplaced(StateError):
    """The log directory whose lock this process holds is no longer at its path (renamed
    away, a backup restored in its place) or its state file was replaced: nothing more
    is written there under this lock, whose transaction ends unsaved."""


class FilesChanged(DirectoryReplaced):
    """A day file no longer holds what the state records of it (a backup copied over
    the directory, ``cp -a backup/. logs/``: the same inodes, older contents): nothing
    is written; the next transaction checks the files as a copy's."""


class StateUnreadable(StateError):
    """The state file is there but cannot be read (permission denied, an I/O error): not
    damaged, so it is never set aside as corrupt; the caller retries."""


@dataclass
class State:
    """Where the log directory stands.

    ``position``: the follower has handled every id up to here (logged, or skipped as
    history on a first start). ``logged``: the id ranges actually in the files, so a
    historical import can fill exactly the gaps. ``fingerprint``: the timestamp of the
    row at ``position``, to recognise a replaced database. ``pending``: see module doc.
    ``skipped``: ids a backfill deliberately did not write because they were older than
    the retention window; a later backfill without retention writes them after all.
    ``importing``: a historical import was asked for and has not finished, so a logger
    killed during it carries on with it at its next start. ``resets``: how many times
    the log was started over for a new database (the replaced-database rule), so a
    writer that checked which database the log holds (``import-archive``) sees, at
    every batch, that it no longer does.
    ``ends``: file name ->
    (size, id of the line ending there) of the files written last: what each holds
    of logged lines (see module doc). ``refill``: ids below the position that a copy
    should hold but whose files lack them (see :mod:`..record.copies`): logged again,
    once, by the follower's next batches. ``file``: the (device, inode) of the state file
    this was read from as it was saved, with those of its directory and lock file (None:
    saved by an older version).
    """

    position: int = 0
    logged: list[tuple[int, int]] = field(default_factory=list)
    fingerprint: str | None = None
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)
    database: str = ""
    importing: bool = False
    skipped: list[tuple[int, int]] = field(default_factory=list)
    resets: int = 0
    ends: dict[str, tuple[int, int]] = field(default_factory=dict)
    file: tuple[int, ...] | None = None
    refill: list[tuple[int, int]] = field(default_factory=list)

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "position": self.position,
            "logged": [list(r) for r in self.logged],
            "fingerprint": self.fingerprint,
            "pending": {name: list(v) for name, v in self.pending.items()},
            "database": self.database,
            "importing": self.importing,
            "skipped": [list(r) for r in self.skipped],
            "resets": self.resets,
            "ends": {name: list(v) for name, v in self.ends.items()},
        }
        if self.refill:
            data["refill"] = [list(r) for r in self.refill]
        if self.file is not None:
            data["file"] = list(self.file)
        return (json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> State:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("unknown state format")
        logged = [(int(lo), int(hi)) for lo, hi in data["logged"]]
        pending = {_file_name(k): _size_and_inode(v) for k, v in dict(data["pending"]).items()}
        ends = {_file_name(k): _size_and_inode(v) for k, v in dict(data.get("ends", {})).items()}
        file = data.get("file")
        fingerprint = data.get("fingerprint")
        return cls(
            position=int(data["position"]),
            logged=idranges.normalise(logged),
            fingerprint=None if fingerprint is None else str(fingerprint),
            pending=pending,
            database=str(data.get("database", "")),
            importing=bool(data.get("importing", False)),
            skipped=idranges.normalise((int(lo), int(hi)) for lo, hi in data.get("skipped", [])),
            resets=int(data.get("resets", 0)),
            ends=ends,
            file=None if file is None else tuple(int(number) for number in file),
            refill=idranges.normalise((int(lo), int(hi)) for lo, hi in data.get("refill", [])),
        )


def _size_and_inode(value: object) -> tuple[int, int]:
    """A pending entry as saved: ``[size, inode]`` (an ``ends`` entry: ``[size, id]``)."""
    if isinstance(value, list) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"bad pending entry {value!r}")


def _file_name(name: object) -> str:
    """A name from the state: a file in the log directory, never a path elsewhere."""
    text = str(name)
    if not text or "/" in text or "\0" in text or text in (".", "..") or os.path.isabs(text):
        raise ValueError(f"it names {text!r}, which is not a file in the log directory")
    return text


class StateStore:
    """Loads, saves and locks the state file of one log directory."""

    def __init__(
        self,
        log_dir: Path,
        *,
        before_save: Callable[[], None] = lambda: None,
        after_save: Callable[[bool], None] = lambda saved: None,
    ) -> None:
        self.log_dir = log_dir
        # Runs before every save: the writer's fsync of lines appended without one, so
        # a state on disk never says more is logged than the disk holds (groupcommit).
        self._before_save = before_save
        # Runs after every save, told whether it succeeded: the writer notes what it
        # leaves (record/copies.py).
        self._after_save = after_save
        self.path = log_dir / STATE_NAME
        self.tmp_path = log_dir / (STATE_NAME + ".tmp")
        self.lock_path = log_dir / LOCK_NAME
        self.lock = DirLock(log_dir)
        self._held: int | None = None  # the lock's descriptor while locked() holds it
        # The state file this process last read or saved (device, inode, ctime): a hold
        # checks that it is still the one at the path, unchanged (a backup restored in
        # its place is another inode; one copied over it, the same inode changed since).
        self._known: tuple[int, int, int] | None = None
        # The state last loaded was read from another file than the one it was saved
        # as: a copy (cp -a, a restore, a move to another file system); see load().
        self.copied = False
        # The files were found changed under this process: the next load is a copy's.
        self.suspect = False
        self._position: int | None = None  # the position this process last read or saved
        self._resets = 0  # ... and the resets then
        # The pending record of the state this process last saved under the lock it
        # holds (None: unknown, so none to rely on): see groupcommit.
        self.saved_pending: dict[str, tuple[int, int]] | None = None

    @contextlib.contextmanager
    def locked(self, patience: float = LOCK_PATIENCE) -> Iterator[None]:
        """Hold the log directory's writer lock, waiting in turn while another batch runs
        (see :mod:`.dirlock`: a waiting follower goes before a backfill's next page).

        Batches hold it for a fraction of a second, so a holder that keeps it longer
        than ``patience`` is stuck (a suspended export, say): raise StateError, which
        callers retry with backoff, rather than block forever and miss a SIGTERM.
        """
        try:
            with self.lock.held(patience) as fd:
                self._held = fd
                self.saved_pending = None  # others may have saved since
                try:
                    yield
                finally:
                    self._held = None
                    self.saved_pending = None
        except LockTimeout as exc:
            raise StateError(str(exc)) from None

    def lock_intact(self) -> bool:
        """Whether the lock taken by :meth:`locked` is held and still the directory's
        (see :meth:`.DirLock.intact`), and the state file still the one this process
        last read or saved (not a backup restored over it)."""
        if self._held is None or not self.lock.intact(self._held):
            return False
        if self._known is None:
            return True
        try:
            here = os.lstat(self.path)
        except OSError:
            return False
        return (here.st_dev, here.st_ino, here.st_ctime_ns) == self._known

    def check_intact(self) -> None:
        """Raise DirectoryReplaced unless :meth:`lock_intact` (under the lock): checked
        before anything is written, since files are opened by path, and a directory
        copied in place of the locked one (``cp -a backup logs`` under a running logger)
        must not receive this transaction's lines nor its state: they record the old
        directory's position, past what the restored files hold."""
        if self._held is not None and not self.lock_intact():
            raise DirectoryReplaced(
                f"{self.log_dir} was replaced while a batch was written to it (a backup"
                " restored in its place?); reading it again"
            )

    def someone_waits(self) -> bool:
        """Whether another writer waits for the lock: a long holder should let go."""
        return self.lock.someone_waits()

    def load(self) -> State | None:
        """The saved state; None when there is none. Raises StateError when unreadable
        (a symlink at its name included: never read through). Sets :attr:`copied`."""
        self.copied = False
        self._known = None  # (until one is read: none to compare with)
        try:
            raw, st = _read_no_follow(self.path)
        except FileNotFoundError:
            return None
        except PermissionError:
            raise StateUnreadable(f"cannot read {self.path}: permission denied") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateError(f"state file {self.path} is a symbolic link") from None
            raise StateUnreadable(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            state = State.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"state file {self.path} is corrupt ({exc})") from None
        self._known = (st.st_dev, st.st_ino, st.st_ctime_ns)
        # Saved elsewhere (a copy), or gone back under this process (a backup copied over
        # the directory, its state file's inode reused): checked against the files. An
        # inode alone can be reused by the copy; all three seldom are, unless the
        # original was deleted first.
        self.copied = (
            (state.file is not None and state.file != self._identity(st))
            or (
                self._position is not None
                and state.position < self._position
                and state.resets == self._resets  # (not a reset: a replaced database)
            )
            or self.suspect
        )
        self.suspect = False
        self._position, self._resets = state.position, state.resets
        return state

    def _identity(self, st: os.stat_result) -> tuple[int, ...]:
        """Where a state file is: its device and inode, its directory's, its lock's."""
        try:
            lock = os.fstat(self._held) if self._held is not None else os.lstat(self.lock_path)
            directory = os.stat(self.log_dir)
        except OSError:
            return (st.st_dev, st.st_ino)
        return (st.st_dev, st.st_ino, directory.st_ino, lock.st_ino)

    def set_aside(self) -> Path | None:
        """Rename an unreadable state file out of the way, keeping it for inspection."""
        if not self.path.exists():
            return None
        target = self.path.with_name(STATE_NAME + ".corrupt")
        os.replace(self.path, target)
        return target

    def save(self, state: State, *, as_found: bool = False) -> None:
        """Atomically replace the state file (durable once this returns). Raises
        DirectoryReplaced (before anything is written) when the directory locked is no
        longer the one at the path. ``as_found``: keep the identity it was read with (a
        copy's state, changed by someone who does not take it over, stays a copy's)."""
        try:
            self._save(state, as_found)
        except BaseException:
            self._after_save(False)
            raise
        self._after_save(True)

    def _save(self, state: State, as_found: bool) -> None:
        self.check_intact()
        self._before_save()
        tmp = self.tmp_path
        fd = create_private(tmp)  # afresh: never written through a link planted there
        try:
            if not as_found or state.file is None:
                state.file = self._identity(os.fstat(fd))  # (a rename keeps the inode)
            data = state.to_json()
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {tmp}")
            os.fsync(fd)
        finally:
            os.close(fd)
        # From the rename on, which record is on disk is not known until the end: none
        # to rely on (a cut back to the old one would cut what the new one records).
        self.saved_pending = None
        os.replace(tmp, self.path)
        self.copied, self._position, self._resets = False, state.position, state.resets
        try:  # (the rename changed its ctime)
            here = os.lstat(self.path)
            self._known = (here.st_dev, here.st_ino, here.st_ctime_ns)
        except OSError:  # gone already: a hold lets go
            self._known = (-1, -1, -1)
        fsync_dir(self.log_dir)
        self.saved_pending = dict(state.pending)

    def mark_first_start(self, position: int) -> None:
        """Record a first start's position in the lock file, durably, before its state.

        The mark outlives a state file that is lost, or never written because the first
        start was killed before saving it: the next start then resumes from here rather
        than taking the database's end (losing what came in between) or its first row.
        """
        if self.first_start() is None:
            self._append_mark(f"{FIRST_START} {position}")

    def first_start(self) -> int | None:
        """The position a first start here recorded, or None if none ever did."""
        for line in self._marks():
            words = line.split()
            if len(words) == len(FIRST_START.split()) + 1 and " ".join(words[:-1]) == FIRST_START:
                with contextlib.suppress(ValueError):
                    return int(words[-1])
        return None

    def record_owner(self, database: str) -> None:
        """Record, once, the database this directory's lines come from, in the lock file.

        A lost or corrupt state is rebuilt from the log files, which do not say whose
        lines they are; this says it (see :meth:`owner`), so the rebuilt state is not
        claimed by whichever database happens to be pointed at the directory.
        """
        if database and "\n" not in database and self.owner() is None:
            self._append_mark(OWNER + database)

    def rewrite_owner(self, database: str) -> None:
        """Record, durably, that the owner is now ``database`` (a move accepted): a line
        added after the old one, which :meth:`owner` reads last. Left naming the old
        path, the lock file would give a state rebuilt later to whatever database
        comes to be at that path, and its rows would be logged here beside the mover's.
        (A line is added rather than the file rewritten: the lock file is locked by its
        inode, and a torn last line is ignored.)"""
        if database and "\n" not in database and self.owner() != database:
            self._append_mark(OWNER + database)

    def owner(self) -> str | None:
        """The owner recorded last by :meth:`record_owner` or :meth:`rewrite_owner`
        (None if none was)."""
        found = None
        for line in self._marks():
            if line.startswith(OWNER) and len(line) > len(OWNER):
                found = line[len(OWNER) :]
        return found

    def forget_marks(self) -> None:
        """Empty the lock file's marks (the owner, the first start): they were another
        database's, whose directory held no message and is taken over. In place, under
        the writer lock, whose file this is (it must stay the same file)."""
        fd = open_private(self.lock_path, os.O_RDWR | os.O_CREAT)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def set_aside_owner(self) -> str | None:
        """The database the set-aside corrupt state names, when that much is readable."""
        try:
            raw = _read_no_follow(self.path.with_name(STATE_NAME + ".corrupt"))[0]
            data = json.loads(raw)
        except (OSError, ValueError):
            return None
        found = data.get("database") if isinstance(data, dict) else None
        return found if isinstance(found, str) and found else None

    def _marks(self) -> list[str]:
        try:
            raw = _read_no_follow(self.lock_path)[0]
        except OSError:
            return []
        return raw.decode("utf-8", errors="replace").splitlines()

    def _append_mark(self, line: str) -> None:
        """One line added to the lock file, fsynced (a torn last line is ignored)."""
        fd = open_private(self.lock_path, os.O_RDWR | os.O_CREAT)
        try:
            size = os.fstat(fd).st_size
            os.lseek(fd, size, os.SEEK_SET)
            text = ("" if size == 0 or self._ends_whole(fd, size) else "\n") + line + "\n"
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _ends_whole(fd: int, size: int) -> bool:
        return os.pread(fd, 1, size - 1) == b"\n"


def read_state_file(log_dir: Path) -> tuple[State, bool]:
    """The state saved in ``log_dir``, read without the lock, never through a symlink
    (for readers: raises OSError, ELOOP for a link, or ValueError/KeyError/TypeError),
    and whether it is a copy's (saved elsewhere: see :attr:`StateStore.copied`)."""
    raw, st = _read_no_follow(log_dir / STATE_NAME)
    state = State.from_json(raw)
    if state.file is None:
        return state, False
    here: tuple[int, ...]
    try:
        here = (st.st_dev, st.st_ino, os.stat(log_dir).st_ino, os.lstat(log_dir / LOCK_NAME).st_ino)
    except OSError:
        here = (st.st_dev, st.st_ino)
    return state, state.file != here


def _read_no_follow(path: Path) -> tuple[bytes, os.stat_result]:
    """A small file's bytes and status, never through a symlink (ELOOP), in five system
    calls (this is read under the lock every batch)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks), st
