"""Small file-system helpers shared by every writer: private modes and durability.

The logs hold private conversations, so everything the logger creates is 0600 (files)
or 0700 (directories) whatever the umask.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


class LogDirError(Exception):
    """The log directory cannot be created or used."""


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and every missing parent, each 0700 whatever the umask.

    ``Path.mkdir(parents=True)`` gives the parents it creates 0777 minus the umask (0755
    under the usual 022), which would leave ``~/.dead-drop`` open to every user.
    Existing directories are left as they are. A file where a directory should be
    raises FileExistsError (for ``path``) or NotADirectoryError (for a parent).
    """
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if directory.is_dir():
                continue  # made by someone else meanwhile: theirs, left alone
            if directory != path:
                raise NotADirectoryError(f"{directory} is not a directory") from None
            raise
        if directory.stat().st_mode & 0o777 != DIR_MODE:  # a umask that masks owner bits
            directory.chmod(DIR_MODE)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) as 0700; tighten it if it is ours and looser.

    Tightening only removes group and other bits: a directory the user made tighter
    (0500) is never given write permission back.
    """
    try:
        make_private_dirs(path)
        if not path.is_dir():
            raise LogDirError(f"{path} is not a directory")
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            path.chmod(st.st_mode & 0o700)
        if not os.access(path, os.W_OK | os.X_OK):
            raise LogDirError(f"log directory {path} is not writable")
    except FileExistsError:
        raise LogDirError(f"cannot create log directory {path}: a file is in the way") from None
    except NotADirectoryError:
        raise LogDirError(
            f"cannot create log directory {path}: a parent is not a directory"
        ) from None
    except PermissionError:
        raise LogDirError(f"cannot create log directory {path}: permission denied") from None
    except OSError as exc:
        raise LogDirError(f"cannot use log directory {path}: {exc.strerror}") from None


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that makes a newly created file 0600 regardless of the umask, and
    never follows a symlink: one planted at ``path`` (``messages-DAY.json -> ../victim``)
    raises OSError ELOOP instead of having the logger write to (and chmod) its target.
    """
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link is in the way", str(path)) from None
        raise
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def create_private(path: Path) -> int:
    """A new, empty 0600 file at ``path`` for writing: whatever was there (a stale temp
    file, a planted symlink) is unlinked first, so nothing is ever written through it.
    For the logger's own temporary names, under the log directory's lock."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL  # never through a link (it exists)
    try:
        return open_private(path, flags)
    except FileExistsError:  # (not unlinked beforehand: this is the per-batch path)
        pass
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return open_private(path, flags)


def read_whole(path: Path) -> bytes:
    """A small file's bytes in four system calls (``Path.read_bytes`` makes seven: its
    buffered reader's fstat, isatty and seek; this is read under the lock every batch)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def is_symlink_error(exc: OSError) -> bool:
    return exc.errno == errno.ELOOP


def fsync_dir(path: Path) -> None:
    """Make a create, rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte, looping over short writes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file at ``path`` (whatever was there unlinked first,
    never written through a link) and fsync it: the first half of every atomic replace."""
    fd = create_private(path)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes, tmp: Path | None = None) -> None:
    """Put ``data`` at ``path`` whole or not at all, 0600, surviving a power loss:
    write a temporary file beside it (``tmp``, default ``NAME.tmp``), fsync, rename
    over, fsync the directory."""
    tmp = tmp if tmp is not None else path.with_name(path.name + ".tmp")
    write_synced(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)
