"""The task figures of ``stats`` and ``report``, computed in a forked child while the
caller counts the messages.

Why a child process, and why a module of its own: the figures rest on every task's
history, built from every line of ``tasks-*.json`` (10,000 tasks: about 49,000 lines,
21 MB), which is CPU-bound Python (a regular expression and a JSON parse per line, then
the figures). Alone, in the same process, that cost ``stats`` 0.7-1.1 s on top of the
6.7 s it takes over 1,000,000 messages: 11-17 %, over issue 19's budget of 10 %
(docs/benchmarks.md, "stats with the task log", measures both ways in the same run);
with the cyclic garbage collector paused while it runs (:mod:`.taskstats`), 0.5-0.75 s
at a load of 4, still about 10 %.
Counting the messages is CPU-bound too, so on a machine with two cores the two overlap
and the task log costs next to nothing in wall time. :mod:`.taskstats` holds the figures
(one concern: what they mean); this module only decides where they are computed.

Where a child cannot be forked (no ``fork`` start method, no process left), or the child
dies (killed, out of memory), the figures are computed here instead, in
:meth:`Pending.result`: the same function, the same answer, only slower. A directory
with no task file starts no child.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..logdir import layout
from .logread import Reader
from .tasklog import task_reader
from .taskstats import Problems, TaskFigures, figures_of

# Every pool started, until its result is taken. A caller that fails before (an error
# reading the messages: the command exits at once) drops its Pending; a pool collected
# then wakes its manager thread to close while the interpreter's own exit handler wakes
# it too, and one of them writes to a pipe the other closed (a traceback on stderr at
# exit, seen with `stats` on an encrypted directory without its identity). Held here, a
# pool is closed by that exit handler alone, after its child's one task.
_STARTED: set[ProcessPoolExecutor] = set()


class Pending:
    """The task figures, computed in a child process while the caller counts the
    messages (``stats`` and ``report``): both are CPU-bound Python, so on a machine with
    two cores the task log costs next to nothing in wall time. Where a child cannot be
    forked, the figures are computed in :meth:`result` instead. A directory with no task
    file starts no child."""

    def __init__(self, reader: Reader, now: dt.datetime) -> None:
        self.tasks = task_reader(reader)
        self._args = (self.tasks, reader.window, now, reader.rooms)
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[tuple[TaskFigures | None, Problems]] | None = None
        if not self._any_file():
            return
        try:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
            self._future = self._pool.submit(figures_of, *self._args)
            _STARTED.add(self._pool)
        except (ValueError, OSError):  # no fork here: computed in result()
            self._pool = None

    def _any_file(self) -> bool:
        for source in self.tasks.sources:
            try:
                if layout.log_files(source.path, (layout.TASKS,)):
                    return True
            except OSError:
                return True  # the reader will say what it cannot read
        return False

    def result(self) -> tuple[TaskFigures | None, Reader]:
        """The figures (None without a task log) and the task files' reader, with what it
        skipped."""
        if self._future is None or self._pool is None:
            if not self._any_file():
                return None, self.tasks
            return figures_of(*self._args)[0], self.tasks
        try:
            figures, (unreadable, damaged, corrupt) = self._future.result()
        except BrokenProcessPool:  # the child died (killed, out of memory): here, then
            return figures_of(*self._args)[0], self.tasks
        finally:
            self._pool.shutdown()
            _STARTED.discard(self._pool)
        self.tasks.unreadable.update(unreadable)
        self.tasks.damaged.update(damaged)
        self.tasks.corrupt_in.update(corrupt)
        return figures, self.tasks
