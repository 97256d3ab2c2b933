"""A PID file that cannot go stale: the pid counts only while its ``flock`` is held.

The daemon holds an exclusive ``flock`` on the file for its whole life, so the kernel
releases it the instant the process dies, however it dies. Readers never trust the
number in the file on its own (pids are reused): they try a non-blocking lock, and only
when that fails (someone holds it) is the pid in the file the running logger's.

A small JSON sidecar (``<pid file>.json``) records what the daemon follows and when it
started, for ``status``; it is trusted under the same rule.

A path given as ``--pid-file`` may name a file of the user's (a typo, ``NOTES``): the
file is only ever removed or overwritten when what it holds is a PID file's (a pid, the
line the logger writes, or nothing: a holder that died as it took the lock leaves an
empty one); anything else is refused with PidFileError, and the file left as it is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from ..files import create_private, make_private_dirs, open_private, write_all


class AlreadyRunning(Exception):
    """Another process holds the PID file."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"already running (pid {pid if pid is not None else '?'})")
        self.pid = pid


class PidFileError(Exception):
    """The PID file cannot be created, or holds something that is not a pid; ``str()``
    is one line for the user (``cannot create PID file /ro/x.pid: Read-only file system``)."""


class Liveness(Enum):
    RUNNING = "running"  # the lock is held: the pid in the file is the logger's
    STALE = "stale"  # the file exists but nobody holds it (a crash, or not ours)
    ABSENT = "stopped"  # no PID file


@dataclass(frozen=True)
class PidStatus:
    liveness: Liveness
    pid: int | None
    info: dict[str, Any]


def info_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


class PidFile:
    """Context manager holding the PID file (usable as DaemonContext's ``pidfile``)."""

    def __init__(self, path: Path, info: dict[str, Any] | None = None) -> None:
        self.path = path
        self.info = info or {}
        self._fd: int | None = None

    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self, *, patience: float = 1.0) -> None:
        """Lock and fill in the file. Raises AlreadyRunning when another process has it.

        ``patience`` rides out a reader's momentary probe lock (``status``, ``stop``).
        """
        try:
            self._acquire(patience)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.filename is not None and exc.strerror and str(exc.filename) != str(self.path):
                why = f"{exc.filename}: {why}"  # a parent directory's trouble, named
            raise PidFileError(f"cannot create PID file {self.path}: {why}") from exc

    def _acquire(self, patience: float) -> None:
        make_private_dirs(self.path.parent)
        deadline = time.monotonic() + patience
        while True:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
            if not _try_lock(fd, fcntl.LOCK_EX):
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                raise AlreadyRunning(read(self.path).pid)  # waits for a new holder's pid
            if _same_file(fd, self.path):
                if not _holds_a_pid(os.pread(fd, MAX_PID_FILE + 1, 0)):
                    os.close(fd)
                    raise PidFileError(_not_a_pid_file(self.path))
                break
            # The holder removed this file between our open and our lock: use the new one.
            os.close(fd)
        self._fd = fd
        pid = os.getpid()
        # Empty the file at once (a crashed holder's pid must not pass for ours), then
        # the sidecar, then the pid: a reader that finds our pid finds our sidecar too.
        os.ftruncate(fd, 0)
        sidecar = {"pid": pid, "started": time.time(), **self.info}
        tmp = info_path(self.path).with_name(info_path(self.path).name + ".tmp")
        side = create_private(tmp)  # afresh: never written through a link planted there
        try:
            write_all(side, (json.dumps(sidecar) + "\n").encode())
        finally:
            os.close(side)
        os.replace(tmp, info_path(self.path))
        os.write(fd, f"{pid}\n".encode())
        os.fsync(fd)

    def release(self) -> None:
        """Remove the files while still holding the lock, then let go."""
        if self._fd is None:
            return
        for path in (info_path(self.path), self.path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        os.close(self._fd)
        self._fd = None


def read(path: Path, *, settle: float = 2.0, strict: bool = False) -> PidStatus:
    """Whether a logger holds ``path``, and its pid and sidecar info when it does.

    A holder writes its sidecar and pid just after taking the lock; ``settle`` bounds
    how long to wait for both when the file is caught locked but not yet filled in.
    ``strict`` (``status``) raises PidFileError for a file nobody holds whose text is
    not a pid (an empty one stays stale: a holder that died just after taking the lock
    leaves one); a directory always raises it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return PidStatus(Liveness.ABSENT, None, {})
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise PidFileError(f"PID file {path} cannot be read: it is a directory")
        if _try_lock(fd, fcntl.LOCK_SH):
            pid = _read_pid(path)
            if strict and pid is None and (text := _text(path)):
                raise PidFileError(f"PID file {path} cannot be read: it holds {text!r}, not a pid")
            return PidStatus(Liveness.STALE, pid, {})
        deadline = time.monotonic() + settle
        while True:
            pid = _read_pid(path)
            info = _read_info(path, pid)
            if (pid is not None and info) or time.monotonic() >= deadline:
                return PidStatus(Liveness.RUNNING, pid, info)
            time.sleep(0.02)
    finally:
        os.close(fd)


def remove_stale(path: Path) -> bool:
    """Remove the PID file if nobody holds it (taking the lock first so no starting
    daemon loses its file). Returns True when a stale file was removed."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not _try_lock(fd, fcntl.LOCK_EX) or not _same_file(fd, path):
            return False
        if not _holds_a_pid(os.pread(fd, MAX_PID_FILE + 1, 0)):
            raise PidFileError(_not_a_pid_file(path))
        for stale in (info_path(path), path):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        return True
    finally:
        os.close(fd)


def check_replaceable(path: Path) -> None:
    """Raise PidFileError unless ``path`` holds what a PID file holds (or is gone)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PID_FILE + 1)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PidFileError(f"cannot read PID file {path}: {exc.strerror}") from None
    if not _holds_a_pid(data):
        raise PidFileError(_not_a_pid_file(path))


MAX_PID_FILE = 32  # a pid and a newline, with room to spare
_PID_TEXT = re.compile(rb"\s*(\d+\s*)?")


def _holds_a_pid(data: bytes) -> bool:
    """Whether ``data`` is what a PID file holds: a number on a line, or nothing."""
    return len(data) <= MAX_PID_FILE and _PID_TEXT.fullmatch(data) is not None


def _not_a_pid_file(path: Path) -> str:
    text = _text(path)
    held = f"it holds {text!r}" if text else "it holds text that is not a pid"
    return f"{path} is not a PID file ({held}); left as it is: give another --pid-file"


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _text(path: Path) -> str:
    """The PID file's first line, shortened for a message ("" when unreadable)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.readline(80).strip()
    except OSError:
        return ""


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    try:
        pid = int(text.splitlines()[0]) if text else 0
    except ValueError:
        return None
    return pid if pid > 0 else None


def _read_info(path: Path, pid: int | None) -> dict[str, Any]:
    try:
        data = json.loads(info_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("pid") != pid:
        return {}  # left by an earlier holder
    return data
