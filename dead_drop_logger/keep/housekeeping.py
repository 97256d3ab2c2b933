"""Apply the file policies (retention, keep-files, compression) to a log directory.

It runs under the log directory's writer lock, so it never races a batch of the
follower, a historical import or the export script. A file named in the state's
``pending`` record (a batch that has not committed, after a crash) is left untouched:
the next batch must be able to cut it back, which deleting or compressing it would
make impossible (the uncommitted lines would survive inside a ``.gz``).

A file deleted is also dropped from the state's ``ends`` (its record of the files
written last, by which a copy of the directory is checked): left there, it would make
every later copy look like one that missed that file, and its messages (pruned on
purpose) would be logged again there. A copy's state stays a copy's (see
:meth:`.StateStore.save`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DEFAULT_RETENTION_DAYS
from ..logdir import layout, tablestate
from ..logdir.state import StateError, StateStore
from . import compress, retention

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """What to keep: see the ``--retention-days``, ``--keep-files`` and
    ``--compress-after`` options."""

    retention_days: int = DEFAULT_RETENTION_DAYS
    keep_files: int | None = None
    compress_after: int | None = None


@dataclass
class Outcome:
    deleted: list[Path] = field(default_factory=list)
    compressed: list[Path] = field(default_factory=list)


def run(log_dir: Path, today: dt.date, policy: Policy) -> Outcome:
    """One pass of every policy; raises OSError / StateError for the caller to report."""
    outcome = Outcome()
    store = StateStore(log_dir)
    with store.locked():
        state = store.load()
        protected = set(state.pending) if state else set()
        protected |= tablestate.pending_names(log_dir)  # a task/agent batch to cut back
        compress.recover(log_dir)
        doomed = retention.select(
            log_dir,
            today,
            retention_days=policy.retention_days,
            keep_files=policy.keep_files,
            protected=protected,
        )
        outcome.deleted = retention.delete(log_dir, doomed)
        gone = {path.name.removesuffix(".gz") for path in outcome.deleted}
        if state is not None and gone & set(state.ends):
            for name in gone:
                state.ends.pop(name, None)
            store.save(state, as_found=store.copied)
        files = layout.log_files(log_dir, layout.KINDS)
        for entry in compress.select(files, today, policy.compress_after, protected):
            outcome.compressed.append(compress.compress(entry.path))
    return outcome


__all__ = ["Outcome", "Policy", "StateError", "run"]
