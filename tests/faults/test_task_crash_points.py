"""Crash points of the task and agent lines: SIGKILL at each of the logger's first
write/fsync/rename/ftruncate calls on the table state and the tasks/agents day files,
while the server takes tasks through its tools with messages between the steps (one
database, messages and tasks interleaved). Every run restarts from what the previous
one left; in the end every task's every transition is in tasks-*.json once (in a line
of its own, or in the ``via`` of a gap) and every message is logged once.
"""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path

import pytest
import serverdb
import tasklines
from conftest import LoggerProcess, start_writer, wait_until
from encryptvariants import is_sealed
from faultkit import (
    assert_clean,
    assert_exactly_once,
    kill_pid,
    needs_strace,
    reaped,
    strace_wrapper,
    traced_pid,
    wait_all_logged,
)
from test_task_record import start_tasks

from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir.state import StateStore
from dead_drop_logger.logdir.tablestate import (
    JOURNAL_NAME,
    PENDING_NAME,
    TABLES_NAME,
    TableStore,
)

pytestmark = pytest.mark.both_ways  # with change notifications and --no-watch

# A task commit: the pending record's save (a line appended: write, fdatasync; the
# first one, or one past the file's compaction size: write, fsync, rename), the lines (a
# write and an fsync per file), the rows' save (a journal line: write, fdatasync; or the
# base afresh: write, fsync, rename, then the journal emptied: ftruncate); ftruncate
# also when a killed commit is cut back or a torn journal or pending line cut off.
CRASH_POINTS = {"write": 8, "fsync": 6, "fdatasync": 5, "rename": 4, "ftruncate": 3}
# Sealed, the lines are a new segment per file and commit (see record/sealed.py):
# written to a temporary name (write, fsync), linked into place, the temporary
# unlinked; a killed commit's segments are removed (unlink) instead of cut back.
SEALED_POINTS = {**CRASH_POINTS, "link": 3, "unlink": 3}


def segment_paths(log_dir: Path, day: str, ahead: int = 40) -> list[Path]:
    """The next ``ahead`` segments' names (and their temporary ones) of the day's task
    and agent files: what strace is confined to, sealed (a segment is numbered past the
    day's highest, see SegmentWriter._number)."""
    found: list[Path] = []
    for kind in (layout.TASKS, layout.AGENTS):
        parts = [f.part for f in layout.log_files(log_dir, (kind,)) if f.day.isoformat() == day]
        for number in range(max(parts, default=0) + 1, max(parts, default=0) + 1 + ahead):
            path = layout.segment_path(log_dir, day, number, kind)
            found += [path, layout.segment_temp_path(path)]
    return found


def commits(log_dir: Path) -> tuple[int, int]:
    """What tells task commits apart: the journal's lines (one a commit) and the base's
    inode (a commit that folds the journal writes the base afresh)."""
    try:
        journal = (log_dir / JOURNAL_NAME).read_bytes().count(b"\n")
    except FileNotFoundError:
        journal = 0
    try:
        base = (log_dir / TABLES_NAME).stat().st_ino
    except FileNotFoundError:
        base = 0
    return journal, base


def crashed_or_moved_on(proc: LoggerProcess, log_dir: Path, where: str) -> bool:
    """Wait until the logger was killed (True) or has made a few task commits more.

    Counted in commits, not lines: under load the first commit after a start can carry
    dozens of task lines (the changes made while it started), and a count of lines would
    call the logger moved on before the commit whose call the round is to kill."""
    target = len(tasklines.lines(log_dir)) + 6
    journal, base = commits(log_dir)
    assert proc.proc is not None
    popen = proc.proc

    def moved_on() -> bool:
        now_journal, now_base = commits(log_dir)
        made = now_base != base or now_journal >= journal + 4
        return made and len(tasklines.lines(log_dir)) >= target

    wait_until(
        lambda: popen.poll() is not None or moved_on(),
        what=f"the logger to die at {where} or to make more task commits",
    )
    return popen.poll() is not None


@needs_strace
def test_killed_at_every_early_task_commit_call(
    server_db: Path, log_dir: Path, logger, watch_mode: str, encryption: str
) -> None:
    serverdb.send_many(server_db, 2)
    # A first start before any task: it takes the tables as they are (none) as known,
    # so every task's every step must be in the files (a first start killed before
    # that would take the tasks made meanwhile as known: see docs/tasks.md).
    first_start = logger().start()
    first_start.wait_ready()
    assert first_start.stop() == 0
    messages = start_writer(server_db, 100_000, interval=0.01)
    tasks = start_tasks(server_db, 100_000, interval=0.01)
    day = dt.date.today().isoformat()  # the server stamps local time: today's files
    watched = [
        log_dir / TABLES_NAME,
        log_dir / (TABLES_NAME + ".tmp"),
        log_dir / JOURNAL_NAME,
        log_dir / PENDING_NAME,
        log_dir / (PENDING_NAME + ".tmp"),
        log_dir / f"tasks-{day}.json",
        log_dir / f"agents-{day}.json",
    ]
    hit: set[tuple[str, int]] = set()
    points = SEALED_POINTS if is_sealed(encryption) else CRASH_POINTS
    try:
        with reaped() as pids:
            for call, most in points.items():
                for k in range(1, most + 1):
                    rule = f"inject={call}:signal=SIGKILL:when={k}"
                    wrapper = strace_wrapper(Path("/dev/null"), rule)
                    segments = segment_paths(log_dir, day) if is_sealed(encryption) else []
                    for path in [*watched, *segments]:  # confined to the commit's files
                        wrapper[-1:-1] = ["-P", str(path)]
                    proc = logger(wrapper=wrapper).start()
                    if crashed_or_moved_on(proc, log_dir, f"{call} #{k}"):
                        hit.add((call, k))
                    else:
                        pids.add(pid := traced_pid(proc))
                        kill_pid(pid)
                    assert proc.proc is not None
                    proc.proc.wait(timeout=60)
                    assert_clean(proc.stderr())
    finally:
        for writer in (messages, tasks):
            writer.send_signal(signal.SIGTERM)  # the tasks: after the task in hand
        for writer in (messages, tasks):
            writer.wait(timeout=120)

    print(f"killed by injection at {sorted(hit)}")
    # a commit's pending save (a line appended: write, fdatasync), its lines (write,
    # fsync) and its rows (a journal line: write, fdatasync); a rename only where a base
    # or a pending file is made afresh, which the rounds need not reach
    assert {("write", 1), ("write", 2), ("fsync", 1)} <= hit, sorted(hit)
    assert {("fdatasync", 1), ("fdatasync", 2)} <= hit, sorted(hit)
    if is_sealed(encryption):  # a commit's segment linked, its temporary name unlinked
        assert {("link", 1), ("unlink", 1)} <= hit, sorted(hit)
    last = logger().start()
    last.wait_ready()
    count = int(serverdb.connect(server_db).execute("SELECT count(*) FROM tasks").fetchone()[0])
    want = {f"TASK-{n + 1:03d}": serverdb.task_path(n) for n in range(count)}
    wait_until(lambda: tasklines.complete(log_dir, want), what="every task's last step")
    first = StateStore(log_dir).first_start()
    assert first is not None
    wait_all_logged(log_dir, server_db, after=first)
    assert last.stop() == 0
    assert_clean(last.stderr())
    assert tasklines.paths(tasklines.lines(log_dir)) == want  # each transition once
    assert_exactly_once(log_dir, server_db, after=first)
    store = TableStore(log_dir)
    saved, pending = store.load(), store.load_pending()
    assert saved is not None and pending is not None and pending[0] <= saved.generation
