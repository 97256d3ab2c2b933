"""The committed view of a log directory: how much of each day file is there for good.

Why: a writer appends a batch's lines before it records them as logged (the two-step
commit of :mod:`..logdir.state`), and a follower the server keeps busy appends for up
to 0.25 s between two saves (group commit). Until the save, those lines are not
committed: after a crash (``kill -9``, power loss) the next start cuts them back to the
sizes the state's ``pending`` record gives, and logs the same messages again, with other
bytes when the rows changed meanwhile (a message read: ``read_flag``; a newest row
deleted; a column added). A reader that shows such a line shows a line that may vanish,
or come back different; a reader that remembers a byte offset past it resumes in the
middle of another line. So a reader that must never show a line twice nor miss one
(``search --follow``; the live page, notifications and shipping to come) reads each
file only up to its committed end, and everything before that end never changes.

What is committed, read from the state file alone, without the writer lock and
without writing anything (a reader never changes the log directory):

- a file the state's ``pending`` record names: up to the size recorded there (a file
  recorded as absent: nothing yet);
- any other file: all of it (a writer records a file in ``pending`` before it appends
  to it, so only a named file can hold lines that are not committed); but in a copy
  (a state saved elsewhere, not yet taken over by a writer) a file its ``ends`` records
  only up to the size recorded there: its state may have been copied before the file
  grew, and the next writer cuts that tail back and logs it again.
- a compressed day file: all of it (only files out of every ``pending`` record are
  compressed, written whole);
- no state file, or one that cannot be read: all of it (the next writer rebuilds the
  state from the files, and cuts nothing).

The order matters: each file's size is taken *before* the state is read. A batch that
begins after the sizes were taken appends past them; one that ended before the state
was read is committed; one in between is named by the record read. Either way nothing
past the committed end is counted, and a size taken mid-line is cut back to the last
whole line by whoever reads up to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..logdir.layout import LogFile
from ..logdir.state import read_state_file


@dataclass(frozen=True)
class CommittedView:
    """What one read of a log directory's state says is committed.

    ``pending``: the committed size of each file the state's pending record names (by
    file name); ``ends``: that of each other file whose logged end the state records;
    every other file is committed whole."""

    log_dir: Path
    pending: Mapping[str, int] = field(default_factory=dict)
    ends: Mapping[str, int] = field(default_factory=dict)

    def end(self, entry: LogFile, size: int) -> int:
        """How many of the bytes of ``entry``, ``size`` long when measured *before*
        this view was read, are committed."""
        if entry.compressed and not entry.encrypted:
            return size
        if entry.encrypted:  # written whole: committed unless a pending record names it
            return 0 if entry.path.name in self.pending else size
        recorded = self.pending.get(entry.path.name, self.ends.get(entry.path.name))
        return size if recorded is None else min(size, recorded)


def read_view(log_dir: Path) -> CommittedView:
    """The committed view of ``log_dir`` now: its state file read (never written, no
    lock taken). A missing or unreadable state leaves every file committed whole."""
    try:
        state, copied = read_state_file(log_dir)  # (never through a link at its name)
    except (OSError, ValueError, KeyError, TypeError):
        return CommittedView(log_dir)
    pending = {name: (size if inode else 0) for name, (size, inode) in state.pending.items()}
    ends = {name: size for name, (size, _last) in state.ends.items()} if copied else {}
    return CommittedView(log_dir, pending, ends)


def committed_ends(files: Iterable[tuple[Path, LogFile]]) -> dict[Path, int | None]:
    """The committed end of each plain file of ``files`` (pairs of its log directory
    and the file), by the file's path: its size first, then its directory's view (see
    the module doc for why in that order). None: a file gone since it was listed (to
    its gzip, say), or a compressed one, read whole."""
    sizes: dict[Path, tuple[Path, LogFile, int | None]] = {}
    for log_dir, entry in files:
        size: int | None = None
        if not entry.compressed or entry.encrypted:
            try:
                size = os.stat(entry.path, follow_symlinks=False).st_size
            except OSError:
                size = None
        sizes[entry.path] = (log_dir, entry, size)
    views: dict[Path, CommittedView] = {}
    ends: dict[Path, int | None] = {}
    for path, (log_dir, entry, size) in sizes.items():
        if size is None:
            ends[path] = None
            continue
        view = views.get(log_dir)
        if view is None:
            view = views[log_dir] = read_view(log_dir)
        ends[path] = view.end(entry, size)
    return ends
