"""``rekey``: the encrypted log files sealed again to a new set of recipients.

Why: a key is lost, a person leaves, a machine is added. Each sealed segment is
decrypted in memory with the identity given and sealed again to the new recipients
(:func:`..crypt.segments.reencrypt`: the new age file written beside it, fsynced, and
renamed over it), one file at a time, under the writer lock, so a running logger never
sees a half-made file and a crash anywhere leaves every file whole: the old age file or
the new one, never one that nobody can read, never plaintext. A segment the state still
records as pending (a batch not yet committed, which the next transaction removes) is
left alone. Run it again after a crash, with an identity that opens both the old files
and the new (an identity file may hold several keys): files already sealed to the new
recipients are simply sealed again. With the old identity alone it stops at the first
of them, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..crypt import keys, segments
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


def rekey_log_dir(
    log_dir: Path, recipients: Sequence[str], done: Callable[[Path], None] = lambda p: None
) -> int:
    """Seal every committed segment of ``log_dir`` (messages, tasks, agents) to
    ``recipients``; returns how many. Raises CryptError (no identity, the wrong one),
    OSError, LockTimeout."""
    count = 0
    lock = DirLock(log_dir)
    for entry in layout.log_files(log_dir, layout.KINDS):
        if not entry.encrypted:
            continue
        with lock.held():  # one file a hold: a running logger waits one file at most
            if entry.path.name in _pending(log_dir) or not entry.path.exists():
                continue
            try:
                segments.reencrypt(entry.path, recipients)
            except keys.MissingIdentity:
                raise
            except keys.CryptError as exc:
                raise keys.CryptError(
                    f"{exc}; if a rekey interrupted before sealed it to the new recipients"
                    " already, give an identity file that holds the new identity too"
                ) from None
        count += 1
        done(entry.path)
    return count


def rekey_all(
    log_dir: Path, recipients: Sequence[str], done: Callable[[Path], None] = lambda p: None
) -> int:
    """:func:`rekey_log_dir` over ``log_dir`` and every room's directory in it."""
    total = rekey_log_dir(log_dir, recipients, done)
    for room in layout.room_dirs(log_dir):
        total += rekey_log_dir(room, recipients, done)
    return total
