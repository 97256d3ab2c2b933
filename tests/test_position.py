"""The position store and its reconciliation with the log files, in-process."""

from __future__ import annotations

import datetime as dt
import fcntl
import gzip
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import day_files, logged_ids

from dead_drop_logger.logdir import ranges
from dead_drop_logger.logdir.state import State, StateError, StateStore
from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.source import Run, Source
from dead_drop_logger.record.writer import DayWriter


class FixedClock:
    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def now(self) -> dt.datetime:
        return self.when


# On the pipeline clock's day: lines that must share one day file are sent with it
# (the server's "now" stamps would split them between two files across midnight).
MARCH_1 = "2026-03-01T12:00:00"


def make_pipeline(db: Path, log_dir: Path, page_size: int = 10_000, **kw: Any) -> Pipeline:
    clock = FixedClock(dt.datetime(2026, 3, 1, 12, 0).astimezone())
    return Pipeline(Source(db), log_dir, DayWriter(log_dir, clock), page_size=page_size, **kw)


def test_ranges_merge_and_gaps():
    merged = ranges.normalise([(5, 7), (1, 2), (3, 3), (10, 12), (11, 20)])
    assert merged == [(1, 3), (5, 7), (10, 20)]
    assert ranges.gaps(merged, 1, 25) == [(4, 4), (8, 9), (21, 25)]
    assert ranges.add(merged, 4, 4) == [(1, 7), (10, 20)]
    assert ranges.gaps([], 1, 0) == []
    assert ranges.from_ids([4, 1, 2, 9]) == [(1, 2), (4, 4), (9, 9)]
    assert ranges.count(merged) == 17


def test_uncommitted_batch_is_cut_back_and_logged_once(server_db: Path, log_dir: Path):
    ids = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    store = StateStore(log_dir)
    committed = store.load()
    assert committed is not None and committed.position == ids[-1]
    # A crash after appending the next batch but before saving its position: the
    # pending sizes are on disk, the lines are in the file (one of them torn).
    more = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    (day_file,) = day_files(log_dir)
    committed.pending = {day_file.name: (day_file.stat().st_size, day_file.stat().st_ino)}
    store.save(committed)
    with day_file.open("ab") as fh:
        fh.write(b'{"id":%d,"half a line' % more[0])
    pipeline.catch_up()
    assert logged_ids(log_dir) == ids + more


@pytest.mark.parametrize("damage", ["missing", "empty", "garbage"])
def test_lost_state_is_rebuilt_from_the_log_files(server_db: Path, log_dir: Path, damage: str):
    ids = serverdb.send_many(server_db, 4)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    state_file = log_dir / ".dead-drop-logger.state"
    if damage == "missing":
        state_file.unlink()
    else:
        state_file.write_bytes(b"" if damage == "empty" else b"{not json")
    more = serverdb.send_many(server_db, 2)
    pipeline.catch_up()
    assert logged_ids(log_dir) == ids + more
    if damage != "missing":
        assert (log_dir / ".dead-drop-logger.state.corrupt").exists()


def test_backfill_pages_through_history_exactly_once(server_db: Path, log_dir: Path):
    ids = serverdb.send_many(server_db, 40)  # 80 rows with CC copies
    pipeline = make_pipeline(server_db, log_dir, page_size=7)
    pipeline.prepare(database_existed=True)
    done = pipeline.backfill()
    assert done.lines == len(ids)
    assert pipeline.backfill().lines == 0
    assert logged_ids(log_dir) == ids


def replace_database(db: Path, sends: int) -> list[int]:
    """The server reset: a new database file at the same path, ids from 1 again."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    serverdb.create(db)
    return serverdb.send_many(db, sends, prefix="reset")


def test_a_replaced_database_is_logged_once_by_follower_and_backfill(
    server_db: Path, log_dir: Path
):
    serverdb.send_many(server_db, 10, prefix="old")  # history, never asked for
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=True)
    state = StateStore(log_dir).load()
    assert state is not None
    state.skipped = [(1, 4)]  # as a retention-limited import leaves it
    StateStore(log_dir).save(state)
    new = replace_database(server_db, 4)  # ids 1..8, all below the old position 20
    # The backfill must not take the new rows for the old database's history...
    assert pipeline.backfill().lines == 0
    reset = StateStore(log_dir).load()
    assert reset is not None and reset.position == 0 and reset.skipped == []
    pipeline.catch_up()  # ...the follower logs them, from the first row
    assert pipeline.backfill().lines == 0
    assert logged_ids(log_dir) == new


def test_deleting_the_newest_messages_is_not_a_reset(server_db: Path, log_dir: Path):
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    ids = serverdb.send_many(server_db, 3)
    pipeline.catch_up()
    conn = serverdb.connect(server_db)
    conn.execute("DELETE FROM messages WHERE id >= ?", (ids[-2],))
    conn.close()
    more = serverdb.send_many(server_db, 1)  # AUTOINCREMENT: new ids above the deleted
    pipeline.catch_up()
    assert logged_ids(log_dir) == ids + more


def test_a_table_without_autoincrement_whose_newest_rows_are_deleted_is_logged_again(
    tmp_path: Path, log_dir: Path
):
    """Documented, kept so (docs/faults.md): not the server's table. Without AUTOINCREMENT
    nothing remembers the deleted ids, so the database looks reset (its last id below the
    logged position) and is logged again from its first row, beside the old lines."""
    db = tmp_path / "plain.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, content TEXT, timestamp TEXT)")
    for i in range(3):
        conn.execute("INSERT INTO messages (content, timestamp) VALUES (?, ?)", (f"m{i}", f"t{i}"))
    pipeline = make_pipeline(db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    conn.execute("DELETE FROM messages WHERE id >= 2")
    conn.execute("INSERT INTO messages (content, timestamp) VALUES ('again', 't9')")  # id 2
    conn.close()
    pipeline.catch_up()
    assert logged_ids(log_dir) == [1, 1, 2, 2, 3]


def test_first_start_on_a_database_without_its_table_yet_logs_from_row_one(
    tmp_path: Path, log_dir: Path
):
    db = tmp_path / "messages.db"
    serverdb.connect(db).close()  # the server opened it but has not created its tables
    pipeline = make_pipeline(db, log_dir)
    assert pipeline.prepare(database_existed=True).position == 0
    serverdb.create(db)
    ids = serverdb.send_many(db, 2)
    pipeline.catch_up()
    assert logged_ids(log_dir) == ids


def test_an_interrupted_first_start_is_still_a_first_start(server_db: Path, log_dir: Path):
    history = serverdb.send_many(server_db, 3)
    log_dir.mkdir()
    (log_dir / ".dead-drop-logger.lock").touch()  # what a start killed early leaves
    (log_dir / "messages-2026-03-01.json").touch()
    state = make_pipeline(server_db, log_dir).prepare(database_existed=True)
    assert state.position == history[-1]


def test_a_lost_state_resumes_where_the_first_start_began(server_db: Path, log_dir: Path):
    history = serverdb.send_many(server_db, 3)
    pipeline = make_pipeline(server_db, log_dir)
    assert pipeline.prepare(database_existed=True).position == history[-1]
    (log_dir / ".dead-drop-logger.state").unlink()  # lost before any line was logged
    sent_meanwhile = serverdb.send_many(server_db, 2)
    again = make_pipeline(server_db, log_dir)  # a new process: the lock file's mark tells
    assert again.prepare(database_existed=True).position == history[-1]
    again.catch_up()
    assert logged_ids(log_dir) == sent_meanwhile


def test_a_first_start_whose_save_failed_retries_quietly_from_the_same_place(
    server_db: Path,
    log_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    history = serverdb.send_many(server_db, 3)
    pipeline = make_pipeline(server_db, log_dir)
    real_save = StateStore.save
    failures = iter([OSError(28, "No space left on device")])

    def save_once_failing(store: StateStore, state: State) -> None:
        for exc in failures:
            raise exc
        real_save(store, state)

    monkeypatch.setattr(StateStore, "save", save_once_failing)
    with caplog.at_level("INFO", logger="dead_drop_logger"):
        with pytest.raises(OSError):
            pipeline.prepare(database_existed=True)
        assert not caplog.records  # nothing said about a state that was never saved
        sent_meanwhile = serverdb.send_many(server_db, 2)
        assert pipeline.prepare(database_existed=True).position == history[-1]
    assert [r.getMessage() for r in caplog.records] == [
        f"first start: logging messages after id {history[-1]}"
    ]
    pipeline.catch_up()
    assert logged_ids(log_dir) == sent_meanwhile


def test_a_damaged_gz_does_not_stop_a_state_rebuild(server_db: Path, log_dir: Path):
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    ids = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.catch_up()
    (day_file,) = day_files(log_dir)
    packed = gzip.compress(day_file.read_bytes())
    (log_dir / "messages-2020-01-01.json.gz").write_bytes(packed[: len(packed) // 2])
    (log_dir / ".dead-drop-logger.state").unlink()
    more = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    pipeline.catch_up()  # rebuilds the state, reading past the damage: no crash
    day_ids = [json.loads(line)["id"] for line in day_file.read_bytes().splitlines()]
    assert day_ids == ids + more


def test_a_stuck_lock_holder_is_an_error_to_retry_not_a_hang(log_dir: Path):
    store = StateStore(log_dir)
    log_dir.mkdir()
    holder = os.open(store.lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(StateError) as raised, store.locked(patience=0.2):
            pass
        assert str(raised.value) == (
            f"{store.lock_path} has been held by another process for over 0.2s; a batch"
            " holds it for a fraction of a second, so that process is stopped or stalled"
            " (or compressing a large day file)"
        )
    finally:
        os.close(holder)
    with store.locked():
        pass


def test_a_day_file_replaced_mid_batch_is_cut_to_nothing_after_a_crash(tmp_path: Path):
    clock = FixedClock(dt.datetime(2026, 3, 1, 12, 0).astimezone())
    writer = DayWriter(tmp_path, clock)
    first = [Run("2026-03-01", b'{"id":1}\n', 1, 1)]
    writer.append(writer.plan(first), writer.sizes(writer.plan(first)))
    batch = writer.plan([Run("2026-03-01", b'{"id":2}\n{"id":3}\n', 2, 3)])
    pending = writer.sizes(batch)  # saved before the append
    day = tmp_path / "messages-2026-03-01.json"
    day.rename(tmp_path / "renamed-by-logrotate.json")
    writer.append(batch, pending)  # creates a new, smaller file; then "kill -9"
    writer.truncate_back(pending)
    assert day.read_bytes() == b""  # the uncommitted lines are gone, nothing padded


def test_a_pending_file_that_is_not_the_one_recorded_is_left_alone(
    server_db: Path, log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pending record whose file holds logged lines but neither the recorded inode nor
    a line ending at the recorded size (no record of that file, then): nothing is cut
    (it used to be cut to 0 bytes, losing every line in it), and one warning says why."""
    ids = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    store = StateStore(log_dir)
    committed = store.load()
    assert committed is not None
    (day_file,) = day_files(log_dir)
    before = day_file.read_bytes()
    committed.pending = {day_file.name: (len(before) // 2, day_file.stat().st_ino + 1)}
    committed.ends = {}
    store.save(committed)
    more = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    caplog.clear()
    with caplog.at_level("WARNING", logger="dead_drop_logger"):
        make_pipeline(server_db, log_dir).catch_up()
    assert logged_ids(log_dir) == ids + more
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{day_file} does not hold what the state records of it ({len(before) // 2} bytes,"
        f" inode {day_file.stat().st_ino + 1}; found {len(before)} bytes, inode"
        f" {day_file.stat().st_ino}, no line ending there); not cutting it back"
    ]
