"""Group commit: a follower that the server keeps busy holds its transaction between
batches, and saves its state (with the fsyncs) a few times a second, not twice a batch.

Why: waking on change, a follower under a server writing flat out logs a batch every
50 ms (the lag of polling every 50 ms). As a transaction of its own, each batch took the
lock, loaded the state, saved it twice (write, fsync, rename, directory fsync: the
two-step commit of :mod:`.state`) and fsynced its lines: at 20 batches a second, about
a third of the logger's CPU, where polling once a second pays it 17 times a second.

How, keeping exactly once: the state on disk is always one the two-step commit wrote,
and its pending record (each file's size before a batch) is what a recovery cuts back
to. A held batch whose files that record already covers (the same files, not replaced,
no shorter) needs no record of its own: cutting back to the older sizes removes it too,
and the position saved with that record is before it, so it is read again. So a held
batch is appended without a save and without an fsync, and a save comes only

- before a batch that goes to a file the record does not cover (a new day, a new part,
  the first batch of a hold): that batch's own pending record;
- ``SAVE_EVERY`` seconds after the last save, once the batch in hand is appended: the
  lines fsynced, then every batch so far recorded as logged, with a pending record at
  the files' new ends, which covers the batches to come (after the append, so the
  fsyncs never delay lines a reader is waiting for);
- at the release: the lines fsynced, then the state with no pending record.

A crash (``kill -9``, power loss) at any instant therefore cuts back and reads again at
most ``SAVE_EVERY`` seconds of lines, never a line twice and never one lost; only a
reader following the file live sees those lines again after the restart.

Who lets go, so nobody waits long on a holder:

- the holder, after any batch while another writer waits for the lock (an export, an
  import, ``prune``: see :mod:`.dirlock`), so they wait one batch at most;
- the follower, after a tick that found nothing, whenever its next wake-up is not
  known to come within one gap, before the date policies (which take the lock
  themselves), before it backs off after a failed tick, and when it stops;
- an error inside a held batch ends the hold with a save of what the batch left
  consistent (a failed batch is still recorded as pending, so it is cut back); after
  a failed fsync, with a cut back to the record on disk instead (no second fsync).

When a save fails (its fsyncs: a disk full), the lines appended since the last save are
cut back at once, to the sizes the record on disk holds, as a failed append is (see
:mod:`.writer`): no line that is not recorded as logged stays in a file.

A hold is also dropped, unsaved, when the lock file is no longer the directory's (the
log directory was deleted or replaced under the holder), at the next batch or at the
release: the next batch starts a transaction of its own there, as it would have without
the hold (its state is not that directory's: a backup restored there keeps its own).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ..clock import monotonic
from ..logdir.state import DirectoryReplaced, State, StateStore
from .writer import DayWriter, Pending

log = logging.getLogger(__name__)

# At most this long between two saves of a held transaction: what a crash may read
# again, and (at 20 batches a second) a save every 5 batches instead of two a batch.
SAVE_EVERY = 0.25


@dataclass
class Held:
    """A transaction kept open between batches: its state, and whether the state in
    memory is ahead of the one on disk (a batch appended, not yet recorded as done)."""

    state: State
    stack: contextlib.ExitStack
    unsaved: bool = False


class GroupCommit:
    """Batches of one log directory, each in a transaction held over from the last
    batch, or begun afresh (``begin``: the pipeline's transaction)."""

    def __init__(
        self,
        store: StateStore,
        writer: DayWriter,
        begin: Callable[[], AbstractContextManager[State]],
        *,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.store = store
        self.writer = writer
        self._begin = begin
        self._clock = clock
        self._saved_at = 0.0  # when a held batch last asked for a save
        self._held: Held | None = None

    @contextlib.contextmanager
    def batch(self, *, hold: bool) -> Iterator[Held]:
        """One batch in the held transaction (or a new one). ``hold``: keep it for the
        next batch unless another writer waits; else release it after this batch."""
        if self._held is not None and not self.store.lock_intact():
            self.drop()
        held = self._held
        if held is None:
            stack = contextlib.ExitStack()
            state = stack.enter_context(self._begin())
            held = self._held = Held(state, stack)
        try:
            yield held
        except DirectoryReplaced:  # nothing written: the directory is not the one held
            self.drop()
            raise
        except Exception:
            if self.writer.sync_failed:
                # Linux reports a failed writeback once and may drop the pages: a second
                # fsync (the release's save) could succeed with the lines not on disk.
                # They are cut back to the record on disk instead, and read again.
                self._cut_back(held.state)
                self.drop()
                raise
            held.unsaved = True  # whatever the batch left (pending still set if it failed)
            with contextlib.suppress(Exception):  # (cut back instead: see release)
                self.release()
            raise
        except BaseException:  # (a test's stand-in for kill -9: nothing more runs)
            self.drop()
            raise
        if not hold:
            self.release()
        elif self.store.someone_waits():
            log.debug("another writer waits for the lock: letting go of it")
            self.release()

    @property
    def holding(self) -> bool:
        """Whether a transaction is held."""
        return self._held is not None

    def covers(self, sizes: Pending) -> bool:
        """Whether the pending record on disk covers a held batch about to append to
        ``sizes``'s files (else the caller saves the batch's own record first)."""
        covered = self.store.saved_pending
        if covered and _covers(covered, sizes):
            return True
        self._saved_at = self._clock()
        return False

    def checkpoint_due(self) -> bool:
        """Whether ``SAVE_EVERY`` has passed since the hold's last save (True resets it:
        the caller saves now)."""
        now = self._clock()
        if now - self._saved_at < SAVE_EVERY:
            return False
        self._saved_at = now
        return True

    def release(self) -> None:
        """End the held transaction (if any), saving what it has logged since its last
        save. The lock is let go even when the save fails (the error is raised): the
        disk then says the last batch is pending, so the next transaction redoes it."""
        held, self._held = self._held, None
        if held is None:
            return
        with held.stack:
            if held.unsaved and not self.store.lock_intact():
                log.debug("the log directory was replaced under the hold: not saving there")
            elif held.unsaved:
                try:
                    self.store.save(held.state)  # (its lines fsynced first: see StateStore)
                except Exception:
                    self._cut_back(held.state)
                    raise

    def _cut_back(self, state: State) -> None:
        """Cut the files back to the pending record on disk (the lock still held): each
        only to its recorded size when it holds that line there, never to nothing when it
        holds a line ``state`` records as logged (see :meth:`.DayWriter.truncate_back`)."""
        covered = self.store.saved_pending
        if covered and self.store.lock_intact():  # (not another directory's files)
            try:
                self.writer.truncate_back(covered, state.ends, state.logged)
            except OSError as exc:  # the record on disk still guards them
                log.warning("could not cut back the lines of a failed save: %s", exc)

    def drop(self) -> None:
        """End the held transaction without saving (after an error, or at close): the
        disk says what to cut back and read again."""
        held, self._held = self._held, None
        if held is not None:
            held.stack.close()


def _covers(recorded: Pending, sizes: Pending) -> bool:
    """Whether cutting back to ``recorded`` removes whatever is appended to files now
    at ``sizes``: each is recorded, and is the same file, no shorter (a file recorded
    as absent, inode 0, is cut back to nothing: covered)."""
    for name, (size, inode) in sizes.items():
        old = recorded.get(name)
        if old is None or (old[1] and (inode != old[1] or size < old[0])):
            return False
    return True


__all__ = ["SAVE_EVERY", "GroupCommit", "Held"]
