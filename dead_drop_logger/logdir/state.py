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

Every writer (the follower, ``--import-historical``, ``export_historical.py``) holds an
exclusive ``flock`` on ``.dead-drop-logger.lock`` for the length of one batch and
rereads the state under it, so they can run at the same time without doubling a line.
They take it in turn (:mod:`.dirlock`), so a follower never starves behind a backfill.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..files import create_private, fsync_dir, open_private, read_whole
from . import ranges as idranges
from .dirlock import LOCK_NAME, PATIENCE, DirLock, LockTimeout

log = logging.getLogger(__name__)

STATE_NAME = ".dead-drop-logger.state"
FORMAT = 1
LOCK_PATIENCE = PATIENCE
FIRST_START = "first start after id"
OWNER = "database "  # + the owner's record: a lock file line, like the first-start mark


class StateError(Exception):
    """The state file cannot be read or written."""


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
    killed during it carries on with it at its next start.
    """

    position: int = 0
    logged: list[tuple[int, int]] = field(default_factory=list)
    fingerprint: str | None = None
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)
    database: str = ""
    importing: bool = False
    skipped: list[tuple[int, int]] = field(default_factory=list)

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
        }
        return (json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> State:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("unknown state format")
        logged = [(int(lo), int(hi)) for lo, hi in data["logged"]]
        pending = {str(k): _size_and_inode(v) for k, v in dict(data["pending"]).items()}
        fingerprint = data.get("fingerprint")
        return cls(
            position=int(data["position"]),
            logged=idranges.normalise(logged),
            fingerprint=None if fingerprint is None else str(fingerprint),
            pending=pending,
            database=str(data.get("database", "")),
            importing=bool(data.get("importing", False)),
            skipped=idranges.normalise((int(lo), int(hi)) for lo, hi in data.get("skipped", [])),
        )


def _size_and_inode(value: object) -> tuple[int, int]:
    """A pending entry as saved: ``[size, inode]``."""
    if isinstance(value, list) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"bad pending entry {value!r}")


class StateStore:
    """Loads, saves and locks the state file of one log directory."""

    def __init__(self, log_dir: Path, *, before_save: Callable[[], None] = lambda: None) -> None:
        self.log_dir = log_dir
        # Runs before every save: the writer's fsync of lines appended without one, so
        # a state on disk never says more is logged than the disk holds (groupcommit).
        self._before_save = before_save
        self.path = log_dir / STATE_NAME
        self.tmp_path = log_dir / (STATE_NAME + ".tmp")
        self.lock_path = log_dir / LOCK_NAME
        self.lock = DirLock(log_dir)
        self._held: int | None = None  # the lock's descriptor while locked() holds it
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
        (see :meth:`.DirLock.intact`)."""
        return self._held is not None and self.lock.intact(self._held)

    def someone_waits(self) -> bool:
        """Whether another writer waits for the lock: a long holder should let go."""
        return self.lock.someone_waits()

    def load(self) -> State | None:
        """The saved state; None when there is none. Raises StateError when unreadable."""
        try:
            raw = read_whole(self.path)
        except FileNotFoundError:
            return None
        except PermissionError:
            raise StateUnreadable(f"cannot read {self.path}: permission denied") from None
        except OSError as exc:
            raise StateUnreadable(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            return State.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"state file {self.path} is corrupt ({exc})") from None

    def set_aside(self) -> Path | None:
        """Rename an unreadable state file out of the way, keeping it for inspection."""
        if not self.path.exists():
            return None
        target = self.path.with_name(STATE_NAME + ".corrupt")
        os.replace(self.path, target)
        return target

    def save(self, state: State) -> None:
        """Atomically replace the state file (durable once this returns)."""
        self._before_save()
        tmp = self.tmp_path
        fd = create_private(tmp)  # afresh: never written through a link planted there
        try:
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

    def owner(self) -> str | None:
        """The owner recorded by :meth:`record_owner` (None if none was)."""
        for line in self._marks():
            if line.startswith(OWNER) and len(line) > len(OWNER):
                return line[len(OWNER) :]
        return None

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
            data = json.loads(self.path.with_name(STATE_NAME + ".corrupt").read_bytes())
        except (OSError, ValueError):
            return None
        found = data.get("database") if isinstance(data, dict) else None
        return found if isinstance(found, str) and found else None

    def _marks(self) -> list[str]:
        try:
            return self.lock_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []

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
