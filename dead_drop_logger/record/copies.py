"""A copied or restored log directory: its files are checked against its state.

Why: a copy of a log directory taken while a logger writes to it (``cp -a``, rsync,
tar, a backup) copies one file at a time, so its state and its day files can be from
different moments: a state copied after a day file records lines the copy of that file
does not hold (their ids are past the position: lost for good), and one copied before
does not record lines the copy holds (logged again: twice). Its files have new inodes,
so nothing about them is the same but what they hold.

How: every state records its own file's identity (device, inode) and, in ``ends``, what
the files written last hold (the size up to which they hold logged lines, and the id of
the line ending there). A state read from another file than it was saved as is a copy
(:attr:`.StateStore.copied`), and before it is used:

- every day file is read (a copy is rare) and its ids compared with ``logged``;
- when they agree, every file it records still holds that line at that size, and no
  newer file holds lines it does not know of, it is the state of those files: what
  they hold past the record is made pending, to be cut back and read again, as after a
  crash;
- otherwise the copy's files are the truth: ``logged`` becomes the ids they hold
  (keeping its owner, its skipped ids and the ranges logged below them, in files since
  pruned, unless a file ``ends`` records is missing), and the ids it recorded that they
  lack go to ``refill``, which the follower logs first: what the copy lacks is logged
  again and what it holds is not, once.

A state saved by an older version records neither and is used as it is.

A directory restored in place of the one a running logger works in (renamed away, the
backup copied to its path) is being written by the copy while the logger finds it: its
state or its day files may not be there yet, or be half copied. A state or a file read
then is neither the backup's nor the logger's, and lines the logger appends go into
files the copy then overwrites (seen: whole ranges lost, or logged twice). So a logger
that finds another directory at its path than it last worked in first waits for it to
settle (:func:`settle`: nothing in it changes for ``SETTLED`` seconds) before it reads
or writes anything there.

A restore can pause for longer than that between two files (a slow disk, a network,
a large backup), and is then read half made: a file it writes after the logger went on
replaces what the logger wrote there, or holds lines its state does not record. So a
writer also notes what it leaves in the directory (:func:`look`), and one that finds a
message file written since by nobody who saved the state (:func:`written_by_another`),
however much later, lets the directory settle again and checks it as a copy's: what
the files lack then is logged again, what they hold is not, once.

A restore can also write a file at the moment the writer appends to it: between the
check of its end and the append (the batch's lines land after the backup's older
ones, and the file then ends with the line the state records: no later check can
tell), between two of the restore's own writes (the batch's first line torn), or after
the append and before the save notes the file as the writer's. So the writer checks
where its lines landed (the pipeline's ``_check_landed``), and each save compares the
files it appended to with what the append left (:meth:`.DayWriter.rewritten`); either
makes the directory checked as a copy's.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from ..index.store import INDEX_NAME
from ..logdir import layout
from ..logdir.state import State
from .writer import line_id_ending_at

log = logging.getLogger(__name__)

# A directory restored under a running logger is used once nothing in it has changed for
# this long (a copy writes its files one after another, each as fast as it can), or after
# ``SETTLE_AT_MOST`` seconds whatever it does.
SETTLED = 0.5
SETTLE_AT_MOST = 30.0


def _snapshot(log_dir: Path) -> frozenset[tuple[str, int, int, int]] | None:
    try:
        with os.scandir(log_dir) as entries:
            found = []
            for entry in entries:
                if entry.name.startswith(INDEX_NAME):
                    continue  # the index (and its journal, a rebuild's temp): a cache
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns))
    except OSError:
        return None
    return frozenset(found)


def settle(log_dir: Path, *, announce: bool = True) -> None:
    """Wait until nothing in ``log_dir`` changes for ``SETTLED`` seconds (a copy being
    restored there is done), at most ``SETTLE_AT_MOST`` seconds. ``announce``: say why
    (another directory than before)."""
    if announce:
        log.info(
            "%s is another directory than before (a copy restored?); waiting until it"
            " stops changing",
            log_dir,
        )
    began = last_change = time.monotonic()
    seen = _snapshot(log_dir)
    while time.monotonic() - began < SETTLE_AT_MOST:
        time.sleep(SETTLED / 5)
        now = _snapshot(log_dir)
        if now != seen:
            seen, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= SETTLED:
            return


Look = tuple[tuple[int, int] | None, dict[str, tuple[int, int, int]]]
"""What a writer left in its log directory: its state file's (inode, change time), and
each plain message file's (inode, size, modification time)."""


def look(log_dir: Path, state_name: str) -> Look:
    """What ``log_dir`` holds now (see :data:`Look`): taken by a writer as it leaves."""
    state = look_state(log_dir, state_name)
    files: dict[str, tuple[int, int, int]] = {}
    try:
        with os.scandir(log_dir) as entries:  # (every poll of an idle follower: cheap)
            for entry in entries:
                name = entry.name
                if not name.startswith(_MESSAGES) or not name.endswith(".json"):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    files[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        pass
    return state, files


_MESSAGES = f"{layout.MESSAGES}-"


def relook(before: Look, log_dir: Path, state_name: str, names: set[str]) -> Look:
    """:func:`look` again, knowing only the state file and the files ``names`` (those
    the writer wrote to since ``before``) can have changed by its hand: the rest is
    kept as it was (a save must not cost a directory scan)."""
    files = dict(before[1])
    for name in names:
        try:
            st = os.lstat(log_dir / name)
        except OSError:
            files.pop(name, None)
            continue
        if stat.S_ISREG(st.st_mode):
            files[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
        else:
            files.pop(name, None)
    return look_state(log_dir, state_name), files


def look_state(log_dir: Path, state_name: str) -> tuple[int, int] | None:
    """The state file's (inode, change time), None when there is none."""
    try:
        st = os.lstat(log_dir / state_name)
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns


def written_by_another(before: Look, now: Look) -> str | None:
    """Which message file changed between a writer's leaving (``before``) and ``now``
    with nobody recording it: the state file untouched (every writer saves it after
    its lines), yet a file appeared with lines, or was rewritten (another inode, size
    or modification time). That is a restore (or a copy) written into the directory
    after the writer last read it, however long after: what it lacks, or holds, is
    not what the state records. None when nothing did, when the state file changed
    (another writer, or a restored state: a copy's, which loading it tells), or when
    the file is only emptied (rotated away: see the pipeline) or gone (deleted,
    compressed)."""
    if before[0] != now[0]:
        return None
    for name, (inode, size, mtime) in now[1].items():
        old = before[1].get(name)
        if size and old != (inode, size, mtime):
            return name
    return None


def disagreement(log_dir: Path, state: State) -> str | None:
    """What in ``log_dir`` disagrees with ``state``'s record of its files, or None."""
    for name, (size, last) in state.ends.items():
        path = log_dir / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            if layout.compressed_path(path).exists():
                continue  # compressed since (never a pending file): its lines are there
            return f"{name} is missing; the state records message {last} ending at byte {size}"
        if not stat.S_ISREG(st.st_mode):
            return f"{name} is not a regular file"
        if st.st_size < size:
            return (
                f"{name} holds {st.st_size} bytes; the state records message {last}"
                f" ending at byte {size}"
            )
        if line_id_ending_at(path, size) != last:
            return f"the line of {name} ending at byte {size} is not message {last}"
    known = [parsed for name in state.ends if (parsed := layout.parse(log_dir / name))]
    newest = max(((f.day, f.part) for f in known), default=None)
    for entry in layout.log_files(log_dir):
        if entry.sealed or entry.path.name in state.ends or entry.path.name in state.pending:
            continue
        if newest is not None and (entry.day, entry.part) <= newest:
            continue
        try:
            st = entry.path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size:
            return f"{entry.path.name} holds lines the state does not record"
    return None


def missing_files(log_dir: Path, state: State) -> bool:
    """Whether a file ``state.ends`` records is missing (not even compressed)."""
    for name in state.ends:
        path = log_dir / name
        if not os.path.lexists(path) and not layout.compressed_path(path).exists():
            return True
    return False


def past_the_record(log_dir: Path, state: State) -> dict[str, tuple[int, int]]:
    """A pending record of what the files ``state.ends`` records hold past it."""
    found: dict[str, tuple[int, int]] = {}
    for name, (size, _last) in state.ends.items():
        if name in state.pending:
            continue
        try:
            st = os.lstat(log_dir / name)
        except OSError:
            continue
        if st.st_size > size:
            found[name] = (size, st.st_ino)
    return found
