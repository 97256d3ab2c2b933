"""The position store and its reconciliation with the log files, in-process."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import serverdb
from conftest import logged_ids

from dead_drop_logger import ranges
from dead_drop_logger.pipeline import Pipeline
from dead_drop_logger.source import Source
from dead_drop_logger.state import StateStore
from dead_drop_logger.writer import DayWriter


class FixedClock:
    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def now(self) -> dt.datetime:
        return self.when


def make_pipeline(db: Path, log_dir: Path, page_size: int = 10_000) -> Pipeline:
    clock = FixedClock(dt.datetime(2026, 3, 1, 12, 0).astimezone())
    return Pipeline(Source(db), log_dir, DayWriter(log_dir, clock), page_size=page_size)


def test_ranges_merge_and_gaps():
    merged = ranges.normalise([(5, 7), (1, 2), (3, 3), (10, 12), (11, 20)])
    assert merged == [(1, 3), (5, 7), (10, 20)]
    assert ranges.gaps(merged, 1, 25) == [(4, 4), (8, 9), (21, 25)]
    assert ranges.add(merged, 4, 4) == [(1, 7), (10, 20)]
    assert ranges.gaps([], 1, 0) == []
    assert ranges.from_ids([4, 1, 2, 9]) == [(1, 2), (4, 4), (9, 9)]
    assert ranges.count(merged) == 17


def test_uncommitted_batch_is_cut_back_and_logged_once(server_db: Path, log_dir: Path):
    ids = serverdb.send_many(server_db, 3)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)
    pipeline.catch_up()
    store = StateStore(log_dir)
    committed = store.load()
    assert committed is not None and committed.position == ids[-1]
    # A crash after appending the next batch but before saving its position: the
    # pending sizes are on disk, the lines are in the file (one of them torn).
    more = serverdb.send_many(server_db, 2)
    day_file = next(log_dir.glob("messages-*.json"))
    committed.pending = {day_file.name: day_file.stat().st_size}
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
