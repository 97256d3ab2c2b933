"""Group commit: a busy follower's batches in one held transaction (see groupcommit).

The pipeline tests drive real Pipelines on real SQLite files with an injected monotonic
clock (when a held batch must save again); a crash is the process's death, which closes
the lock without saving anything more (``commits.drop()``)."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import serverdb
from conftest import DEADLINE, FOREVER, logged_ids, start_writer, stop_writer, wait_until
from test_position import MARCH_1, make_pipeline

from dead_drop_logger.config import Settings
from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir import state as state_module
from dead_drop_logger.logdir.layout import LOCK_FILE
from dead_drop_logger.logdir.state import State, StateStore
from dead_drop_logger.record import pipeline as pipeline_module
from dead_drop_logger.record.follow import Follower
from dead_drop_logger.record.groupcommit import SAVE_EVERY
from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.source import SourceError
from dead_drop_logger.record.writer import WriteError

EXPORT = Path(__file__).resolve().parent.parent / "export_historical.py"
DAY = "messages-2026-03-01.json"
MARCH_2 = "2026-03-02T08:00:00"
NEXT_DAY = "messages-2026-03-02.json"
LET_GO = "another writer waits for the lock: letting go of it"  # (debug)


class Ticks:
    """An injected monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def on_disk(log_dir: Path) -> State:
    state = StateStore(log_dir).load()
    assert state is not None
    return state


def lock_is_free(log_dir: Path) -> bool:
    fd = os.open(log_dir / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def started(db: Path, log_dir: Path, ticks: Ticks) -> Pipeline:
    pipeline = make_pipeline(db, log_dir, ticks=ticks)
    pipeline.prepare(database_existed=False)  # all of it is new: from the first row
    return pipeline


def test_held_batches_save_every_interval_and_a_crash_redoes_the_rest_once(
    server_db: Path, log_dir: Path
) -> None:
    ticks = Ticks()
    pipeline = started(server_db, log_dir, ticks)
    first = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    assert pipeline.follow_once(hold=True).lines == len(first)
    # on disk: the batch pending (its file recorded as absent), the position before it
    recorded = on_disk(log_dir)
    assert (recorded.position, recorded.pending) == (0, {DAY: (0, 0)})
    assert logged_ids(log_dir) == first and not lock_is_free(log_dir)

    second = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    before = (log_dir / ".dead-drop-logger.state").read_bytes()
    assert pipeline.follow_once(hold=True).lines == len(second)
    # covered by that record: no save at all, the lines are there
    assert (log_dir / ".dead-drop-logger.state").read_bytes() == before
    assert logged_ids(log_dir) == first + second

    ticks.now += SAVE_EVERY
    third = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    # the interval is up: once this batch is in, all of it recorded as logged, with a
    # pending record at the file's new end for the batches to come
    recorded = on_disk(log_dir)
    assert recorded.position == third[-1]
    assert recorded.logged == [(first[0], third[-1])]
    day = (log_dir / DAY).stat()
    assert recorded.pending == {DAY: (day.st_size, day.st_ino)}

    fourth = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    pipeline.commits.drop()  # kill -9: the lock goes with the process, nothing is saved
    assert logged_ids(log_dir) == first + second + third + fourth

    again = make_pipeline(server_db, log_dir)  # the next start cuts back and reads again
    assert again.catch_up().lines == len(fourth)
    assert logged_ids(log_dir) == first + second + third + fourth
    assert (on_disk(log_dir).position, on_disk(log_dir).pending) == (fourth[-1], {})


def test_release_records_every_held_batch_and_lets_go(server_db: Path, log_dir: Path) -> None:
    pipeline = started(server_db, log_dir, Ticks())
    ids = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    ids += serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    assert on_disk(log_dir).position == 0
    pipeline.commits.release()
    recorded = on_disk(log_dir)
    assert (recorded.position, recorded.pending, recorded.logged) == (ids[-1], {}, [(1, ids[-1])])
    assert lock_is_free(log_dir) and logged_ids(log_dir) == ids


def test_a_writer_waiting_for_the_lock_ends_the_hold_after_one_batch(
    server_db: Path, log_dir: Path
) -> None:
    pipeline = started(server_db, log_dir, Ticks())
    ids = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    queue = os.open(log_dir / ".dead-drop-logger.queue", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(queue, fcntl.LOCK_EX)  # another writer, next in line
        pipeline.follow_once(hold=True)
        assert lock_is_free(log_dir)
        assert (on_disk(log_dir).position, on_disk(log_dir).pending) == (ids[-1], {})
    finally:
        os.close(queue)


def test_a_batch_into_a_file_the_record_does_not_cover_saves_first(
    server_db: Path, log_dir: Path
) -> None:
    pipeline = started(server_db, log_dir, Ticks())
    first = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    serverdb.send_many(server_db, 2, timestamp="2026-03-02T08:00:00")  # a new day's file
    pipeline.follow_once(hold=True)
    # saved before the append, though the interval is not up: its file is recorded
    recorded = on_disk(log_dir)
    day_size = (log_dir / DAY).stat().st_size
    assert recorded.position == first[-1]
    assert recorded.pending == {"messages-2026-03-02.json": (0, 0)}
    assert day_size and (log_dir / "messages-2026-03-02.json").stat().st_size


def test_a_log_directory_replaced_under_a_hold_is_not_written_with_the_old_state(
    server_db: Path, log_dir: Path
) -> None:
    pipeline = started(server_db, log_dir, Ticks())
    first = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    moved = log_dir.rename(log_dir.with_name("moved-away"))
    log_dir.mkdir(mode=0o700)
    later = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    pipeline.commits.release()
    # A transaction of its own in the new directory: its state was lost, so everything
    # is logged there again (as without a hold); the old directory keeps its one batch.
    assert logged_ids(log_dir) == first + later
    assert on_disk(log_dir).position == later[-1]
    assert logged_ids(moved) == first


def test_an_export_is_not_kept_waiting_by_a_follower_the_server_keeps_busy(
    server_db: Path, log_dir: Path, logger
) -> None:
    history = serverdb.send_many(server_db, 2000, prefix="history")
    follower = logger("--log-level", "debug").start()
    follower.wait_ready()
    writer = start_writer(server_db, FOREVER)  # flat out: the follower holds between batches
    try:
        wait_until(lambda: len(logged_ids(log_dir)) > 2000, what="the follower busy")

        def export_while_held() -> bool:
            """An export, never kept waiting (each one asserts it); True once one came
            while the follower held the lock (it says it let go). One that came as the
            follower had let go by itself (a tick that found nothing) proves nothing,
            so another comes: it has nothing left to log, but takes the lock the same
            way, and the writer keeps the follower busy until the test is done."""
            done = subprocess.run(
                [sys.executable, str(EXPORT), "--db", str(server_db), "--log-dir", str(log_dir)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=DEADLINE * 5,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert "held by another process" not in done.stderr
            return LET_GO in follower.stderr()

        wait_until(export_while_held, what="an export that came while the follower held")
    finally:
        stop_writer(writer)
    everything = serverdb.all_ids(server_db)
    assert everything[: len(history)] == history
    wait_until(lambda: logged_ids(log_dir) == everything, what="every message exactly once")
    assert follower.stop() == 0
    assert on_disk(log_dir).position == everything[-1] and not on_disk(log_dir).pending


def test_the_file_policies_run_while_the_server_keeps_the_follower_busy(
    server_db: Path, log_dir: Path, logger
) -> None:
    """--keep-files counts parts, so its policy runs at every part switch, under the
    writer lock: a follower holding it between batches lets go first (else the policy
    waits out the lock's patience and says "rotation: ... held by another process")."""
    follower = logger("--keep-files", "3", env={"DEAD_DROP_MAX_BYTES": "20000"}).start()
    follower.wait_ready()
    writer = start_writer(server_db, 3000)  # about 2.4 MB: parts galore, while busy
    try:
        assert writer.wait(timeout=DEADLINE * 5) == 0
        last = serverdb.all_ids(server_db)[-1]
        wait_until(lambda: on_disk(log_dir).position == last, what="the last message saved")
    finally:
        writer.kill()
    wait_until(lambda: len(layout.log_files(log_dir)) <= 3, what="--keep-files")
    kept = logged_ids(log_dir)  # the newest messages, each exactly once
    assert kept == serverdb.all_ids(server_db)[-len(kept) :]
    assert follower.stop() == 0
    assert "rotation:" not in follower.stderr(), follower.stderr()


def test_a_held_batch_failing_in_its_second_file_leaves_nothing_of_it_in_the_first(
    server_db: Path, log_dir: Path
) -> None:
    """A covered batch into two files (ids and day stamps interleave around midnight:
    each server process stamps its own "now") whose second file refuses the write
    (file too large; a full disk alike): its lines already appended to the first file
    must be cut back before the batch is read again, not logged twice."""
    pipeline = started(server_db, log_dir, Ticks())
    serverdb.send_many(server_db, 1, timestamp=MARCH_1)
    serverdb.send_many(server_db, 20, timestamp=MARCH_2)
    pipeline.follow_once(hold=True)  # both files recorded (absent), then written
    serverdb.send_many(server_db, 1, timestamp=MARCH_1)  # both files again: covered
    serverdb.send_many(server_db, 1, timestamp=MARCH_2)
    limit = (log_dir / NEXT_DAY).stat().st_size  # the second file cannot grow
    assert (log_dir / DAY).stat().st_size * 3 < limit  # (the first one can)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        with pytest.raises(WriteError, match="file too large"):
            pipeline.follow_once(hold=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, handler)
    assert lock_is_free(log_dir)
    make_pipeline(server_db, log_dir).catch_up()  # the retry
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)


@pytest.mark.parametrize("failing", ["the day file", "the directory"])
def test_lines_whose_fsync_failed_are_cut_back_not_recorded_by_a_second_fsync(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Linux reports a failed writeback once (EIO, ENOSPC on a thin or network disk)
    and may drop the dirty pages: a second fsync then succeeds without the lines on
    disk. So after a failed fsync the lines it covered must be cut back and read
    again, never recorded as logged by a retried save (the stand-in below fails the
    day file's first fsync, as strace's inject=fsync:error=EIO:when=1 would). The same
    when the directory's fsync fails: the name of the file the batch made may not be
    on disk."""
    ticks = Ticks()
    pipeline = started(server_db, log_dir, ticks)
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    ticks.now += SAVE_EVERY  # the next batch's checkpoint fsyncs the day file
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    real_fsync = os.fsync
    failed: list[int] = []

    def fails(fd: int) -> bool:
        if failing == "the directory":  # its entry for the file the first batch made
            return os.path.isdir(f"/proc/self/fd/{fd}")
        return os.readlink(f"/proc/self/fd/{fd}").endswith(DAY)

    def fsync(fd: int) -> None:
        if not failed and fails(fd):
            failed.append(fd)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(WriteError):
        pipeline.follow_once(hold=True)
    assert failed
    # nothing whose only fsync failed is recorded as logged: the record on disk (the
    # file absent, position 0) stands, and the file is cut back to it
    recorded = on_disk(log_dir)
    assert (recorded.position, recorded.logged) == (0, [])
    assert logged_ids(log_dir) == []
    monkeypatch.undo()
    make_pipeline(server_db, log_dir).catch_up()
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)


def test_a_save_failing_after_its_rename_cuts_back_nothing_the_new_state_records(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint whose state file is renamed into place but whose directory fsync
    fails: the new state may be the one on disk, so the lines it records as logged
    must stay (cutting back to the older record would lose them)."""
    ticks = Ticks()
    pipeline = started(server_db, log_dir, ticks)
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    ticks.now += SAVE_EVERY
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)

    def fsync_dir(path: Path) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(state_module, "fsync_dir", fsync_dir)
    with pytest.raises(OSError):
        pipeline.follow_once(hold=True)
    monkeypatch.undo()
    make_pipeline(server_db, log_dir).catch_up()
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)


def test_a_hold_let_go_after_its_log_directory_was_restored_from_a_backup_leaves_it_alone(
    server_db: Path, log_dir: Path
) -> None:
    """The log directory replaced under a hold (a backup restored) and the hold then let
    go after a tick that found nothing: the held state is not the restored directory's
    and must not be saved there (it would say the backup holds lines it does not)."""
    pipeline = started(server_db, log_dir, Ticks())
    first = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.follow_once()  # a transaction of its own: saved
    backup = shutil.copytree(log_dir, log_dir.with_name("backup"))
    second = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    log_dir.rename(log_dir.with_name("replaced"))
    backup.rename(log_dir)  # the user restores the backup
    pipeline.commits.release()  # (the follower's let-go after a tick that found nothing)
    make_pipeline(server_db, log_dir).catch_up()
    assert logged_ids(log_dir) == first + second


def test_a_failed_tick_does_not_back_off_holding_the_writer_lock(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hold is kept over the wait after a busy tick; when the next tick then fails
    before any batch (its change check: the database locked, an I/O error), the
    follower backs off (here 10 s) and must not keep the lock meanwhile, or an export
    or prune waiting for it gives up after its 2 s patience."""
    follower = Follower(Settings(db=server_db, log_dir=log_dir, poll_interval=5.0))
    follower.pipeline.prepare(database_existed=False)
    serverdb.send_many(server_db, 3)
    assert follower.pipeline.catch_up(hold=True).lines  # the server keeps it busy: held
    assert not lock_is_free(log_dir)

    def changed() -> bool:
        raise SourceError(f"database {server_db} is locked")

    monkeypatch.setattr(follower.source, "changed", changed)
    tick = threading.Thread(target=lambda: follower._retrying(follower._tick, once=True))
    tick.start()
    try:
        wait_until(lambda: follower.reporter.in_trouble, what="the failed tick reported")
        with StateStore(log_dir).locked():  # another writer, with the usual patience
            pass
    finally:
        follower.request_stop()
        tick.join(timeout=DEADLINE)
        follower.pipeline.commits.release()
        follower.pipeline.close()
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)


def test_a_failed_save_cuts_a_day_file_replaced_by_a_copy_of_itself_back_only_to_the_record(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held transaction's save fails (its fsync: EIO) after the day file was replaced
    by a copy of itself (the same bytes, a new inode: ``rsync`` from a backup, an
    editor's save). The cut back to the record on disk must cut only what follows the
    record: the file is not the inode recorded, and only the state's logged ids (and
    ends) say it holds logged lines; without them it was taken for a file the batch
    made afresh and cut to nothing, losing every line the state records as logged."""
    ticks = Ticks()
    pipeline = started(server_db, log_dir, ticks)
    first = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    ticks.now += SAVE_EVERY  # the checkpoint: all of it logged, a record at the end
    first += serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    day = log_dir / DAY
    recorded = on_disk(log_dir)
    assert recorded.pending == {DAY: (day.stat().st_size, day.stat().st_ino)}
    assert recorded.logged == [(first[0], first[-1])]
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)  # covered by that record: appended, no fsync yet
    shutil.copy2(day, log_dir / "copy.tmp")
    os.replace(log_dir / "copy.tmp", day)  # the same bytes, another inode
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        # (the lines' own inode is fsynced: the one replaced, now "DAY (deleted)")
        if f"/{DAY}" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(WriteError):
        pipeline.commits.release()  # its save fsyncs the day file first: fails
    monkeypatch.undo()
    assert logged_ids(log_dir) == first  # cut back to the record, not to nothing
    make_pipeline(server_db, log_dir).catch_up()
    assert logged_ids(log_dir) == serverdb.all_ids(server_db)


class FsyncedSizes:
    """os.fsync, noting each inode's size at its last fsync."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: dict[int, int] = {}
        self._fsync = os.fsync
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: int) -> None:
        self._fsync(fd)
        self.sizes[os.fstat(fd).st_ino] = os.fstat(fd).st_size

    def covers(self, st: os.stat_result) -> bool:
        return self.sizes.get(st.st_ino, 0) >= st.st_size


def test_a_held_batchs_file_renamed_away_before_the_save_is_still_fsynced(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """logrotate's create mode (or a user's mv) between two held batches: the save that
    records the first batch as logged must have fsynced the file it went to, now under
    another name, not only the new file at its name (a power cut lost it otherwise)."""
    ticks = Ticks()
    pipeline = started(server_db, log_dir, ticks)
    fsynced = FsyncedSizes(monkeypatch)
    first = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)  # recorded pending (the file absent), then appended
    rotated = log_dir.parent / "rotated.json"
    os.rename(log_dir / DAY, rotated)
    serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    ticks.now += SAVE_EVERY
    pipeline.follow_once(hold=True)  # a new file at the name: covered; then the save
    assert on_disk(log_dir).logged == [(first[0], serverdb.all_ids(server_db)[-1])]
    assert fsynced.covers(rotated.stat())
    pipeline.commits.release()
    pipeline.close()


def test_a_history_pages_file_renamed_away_before_the_save_is_still_fsynced(
    server_db: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the pages of a backfill's hold (see pipeline's BACKFILL_HOLD)."""
    monkeypatch.setattr(pipeline_module, "BACKFILL_HOLD", 3600.0)  # one hold: one save
    ids = serverdb.send_many(server_db, 15, timestamp=MARCH_1)  # 30 rows: 3 pages of 10
    pipeline = make_pipeline(server_db, log_dir, page_size=2)
    pipeline.prepare(database_existed=True)
    fsynced = FsyncedSizes(monkeypatch)
    rotated = log_dir.parent / "rotated.json"

    def rotate(step: object) -> None:
        if not rotated.exists():  # after the first page
            os.rename(log_dir / DAY, rotated)

    assert pipeline.backfill(on_page=rotate).lines == len(ids)
    pipeline.close()
    assert rotated.stat().st_size and on_disk(log_dir).logged == [(1, ids[-1])]
    assert fsynced.covers(rotated.stat())
