"""Group commit: a follower that the server keeps busy holds its transaction between
batches, so each batch costs one state save instead of two, and no lock or state load.

Why: waking on change, a follower under a server writing flat out logs a batch every
50 ms (the lag of polling every 50 ms). As a transaction of its own, each batch takes the
lock, loads the state and saves it twice (write, fsync, rename, directory fsync: the
two-step commit of :mod:`.state`); at 20 batches a second that was a quarter of the
logger's CPU. Held, a batch's *pending* save also records the batch before it as logged
(as the backfill does for its pages), and the closing save comes once, at the release.

Exactly once is unchanged: the state on disk is always one the two-step commit wrote.
While a batch's lines are appended and not yet recorded as logged, the disk says that
batch is pending, so a crash at any instant (``kill -9``, power loss) cuts it back and it
is read again. What holding changes is how long that window stays open: until the next
batch or the release (50 ms at most under load), not only until the batch's own end.

Who lets go, so nobody waits long on a holder:

- the holder, after any batch while another writer waits for the lock (an export, an
  import, ``prune``: see :mod:`.dirlock`), so they wait one batch at most;
- the follower, after a tick that found nothing, whenever its next wake-up is not
  known to come within one gap, before the date policies (which take the lock
  themselves), and when it stops;
- an error inside a held batch drops the hold without a save: the disk already says
  what to undo and read again.

A hold is also dropped, unsaved, when the lock file is no longer the directory's (the
log directory was deleted or replaced under the holder): the next batch starts a
transaction of its own there, as it would have without the hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from .state import State, StateStore


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
        self, store: StateStore, begin: Callable[[], AbstractContextManager[State]]
    ) -> None:
        self.store = store
        self._begin = begin
        self._held: Held | None = None

    @property
    def holding(self) -> bool:
        return self._held is not None

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
        except BaseException:
            self.drop()
            raise
        if not hold or self.store.someone_waits():
            self.release()

    def release(self) -> None:
        """End the held transaction (if any), saving what it has logged since its last
        save. The lock is let go even when the save fails (the error is raised): the
        disk then says the last batch is pending, so the next transaction redoes it."""
        held, self._held = self._held, None
        if held is None:
            return
        with held.stack:
            if held.unsaved:
                self.store.save(held.state)

    def drop(self) -> None:
        """End the held transaction without saving (after an error, or at close)."""
        held, self._held = self._held, None
        if held is not None:
            held.stack.close()


__all__ = ["GroupCommit", "Held"]
