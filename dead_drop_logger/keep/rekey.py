"""``rekey``: the encrypted log files sealed again to a new set of recipients.

Why: a key is lost, a person leaves, a machine is added. Each sealed segment is
decrypted in memory with the identity given and sealed again to the new recipients
(:func:`..crypt.segments.reencrypt`: the new age file written beside it, fsynced, and
renamed over it), one file at a time, under the writer lock, so a running logger never
sees a half-made file and a crash anywhere leaves every file whole: the old age file or
the new one, never one that nobody can read, never plaintext. A segment the state still
records as pending (a batch not yet committed, which the next transaction removes) is
left alone.

Resuming: a journal beside the files (``.dead-drop-logger.rekey``: the new recipients,
then a line per file naming the new age file by its stamp, inode, size and mtime,
written and fsynced before the rename) lets a rekey run again after a crash, with the
same identity and the same ``--to``, skip the files it already sealed: a file whose
stamp is the journal's is the new one (a rename keeps all three); any other is sealed
(again). It holds names and stamps only, and is removed when the directory is done. A
rerun to other recipients starts a new journal, and then needs an identity that opens
the files the first one sealed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..crypt import keys, segments
from ..files import create_private, fsync_dir, open_private, read_whole, write_all
from ..logdir import layout
from ..logdir.dirlock import DirLock
from ..logdir.state import read_state_file
from ..logdir.tablestate import TableStore


def _pending(log_dir: Path) -> set[str]:
    """The files a pending record (the messages' or the tables') names: left alone."""
    names: set[str] = set()
    try:
        state, _copied = read_state_file(log_dir)
        names.update(state.pending)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    store = TableStore(log_dir)
    pending = store.load_pending()
    if pending is not None:  # (kept after its batch: pending only while newer than the rows)
        try:
            rows = store.load()
        except (OSError, ValueError):
            rows = None
        if rows is None or pending[0] > rows.generation:
            names.update(pending[1])
    return names


JOURNAL = ".dead-drop-logger.rekey"
Stamp = tuple[int, int, int]  # inode, size, mtime (ns)


def _stamp(st: os.stat_result) -> Stamp:
    return st.st_ino, st.st_size, st.st_mtime_ns


class Journal:
    """What a rekey of one directory to ``recipients`` has sealed so far (see above)."""

    def __init__(self, log_dir: Path, recipients: Sequence[str]) -> None:
        self.path = log_dir / JOURNAL
        self.header = json.dumps({"to": sorted(recipients)}, separators=(",", ":"))
        self.sealed: dict[str, Stamp] = {}
        with contextlib.suppress(OSError, ValueError):
            first, *rest = read_whole(self.path).decode().splitlines()
            if first == self.header:
                for line in rest:
                    with contextlib.suppress(ValueError, TypeError, KeyError):
                        entry = json.loads(line)
                        self.sealed[entry["name"]] = tuple(entry["stamp"])
                return
        fd = create_private(self.path)  # none yet, or another rekey's: this one's anew
        try:
            write_all(fd, self.header.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(log_dir)

    def done(self, path: Path) -> bool:
        """Whether ``path`` is the age file this rekey sealed."""
        try:
            return self.sealed.get(path.name) == _stamp(os.stat(path))
        except OSError:
            return False

    def record(self, path: Path, new: os.stat_result) -> None:
        """``path``'s new age file (not yet renamed into place) made durable here first."""
        line = json.dumps({"name": path.name, "stamp": _stamp(new)}, separators=(",", ":"))
        fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            write_all(fd, line.encode() + b"\n")
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def finish(self) -> None:
        os.unlink(self.path)
        fsync_dir(self.path.parent)


def rekey_log_dir(
    log_dir: Path, recipients: Sequence[str], done: Callable[[Path], None] = lambda p: None
) -> int:
    """Seal every committed segment of ``log_dir`` (messages, tasks, agents) to
    ``recipients``; returns how many (those a rekey cut short sealed already too).
    Raises CryptError (no identity, the wrong one), OSError, LockTimeout."""
    count = 0
    lock = DirLock(log_dir)
    files = [entry for entry in layout.log_files(log_dir, layout.KINDS) if entry.encrypted]
    if not files:
        return 0
    with lock.held():
        journal = Journal(log_dir, recipients)
    for entry in files:
        with lock.held():  # one file a hold: a running logger waits one file at most
            if entry.path.name in _pending(log_dir) or not entry.path.exists():
                continue
            if not journal.done(entry.path):
                try:
                    segments.reencrypt(entry.path, recipients, journal.record)
                except keys.MissingIdentity:
                    raise
                except keys.CryptError as exc:
                    raise keys.CryptError(
                        f"{exc}; if a rekey to other recipients sealed it already, give an"
                        " identity file that holds their identity too"
                    ) from None
        count += 1
        done(entry.path)
    with lock.held():
        journal.finish()
    return count


def rekey_all(
    log_dir: Path, recipients: Sequence[str], done: Callable[[Path], None] = lambda p: None
) -> int:
    """:func:`rekey_log_dir` over ``log_dir`` and every room's directory in it."""
    total = rekey_log_dir(log_dir, recipients, done)
    for room in layout.room_dirs(log_dir):
        total += rekey_log_dir(room, recipients, done)
    return total
