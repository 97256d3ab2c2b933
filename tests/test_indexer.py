"""The logger's indexer waits while lines are logged fast, and indexes all that waited
once they come slower (see control/indexer.py): driven look by look on real logs."""

from __future__ import annotations

from pathlib import Path

import serverdb
from test_index import rows_of
from test_position import MARCH_1, make_pipeline

from dead_drop_logger.control.indexer import Indexer
from dead_drop_logger.index.store import INDEX_NAME

FAST = 8_000  # bytes between two looks: 2 sends' lines are under it, 40 sends' over


def logged(server_db: Path, log_dir: Path, sends: int) -> None:
    serverdb.send_many(server_db, sends, timestamp=MARCH_1)
    pipeline = make_pipeline(server_db, log_dir)
    pipeline.prepare(database_existed=False)  # (the first time: from the first row)
    pipeline.catch_up()
    pipeline.close()


def indexed_lines(log_dir: Path) -> int:
    if not (log_dir / INDEX_NAME).exists():
        return 0
    return sum(lines for _end, lines in rows_of(log_dir).values())


def all_lines(log_dir: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in log_dir.glob("messages-*.json"))


def test_fast_logging_waits_and_a_slower_look_indexes_all_of_it(
    server_db: Path, log_dir: Path
) -> None:
    indexer = Indexer(log_dir, fast=FAST)
    logged(server_db, log_dir, 40)
    indexer.once()  # the first look: over FAST since nothing
    assert indexed_lines(log_dir) == 0
    indexer.once()  # nothing logged since: all of it
    assert indexed_lines(log_dir) == all_lines(log_dir) > 0

    logged(server_db, log_dir, 2)  # slow: indexed at the next look
    indexer.once()
    assert indexed_lines(log_dir) == all_lines(log_dir)

    logged(server_db, log_dir, 40)  # fast: waits
    before = indexed_lines(log_dir)
    indexer.once()
    assert indexed_lines(log_dir) == before < all_lines(log_dir)
    logged(server_db, log_dir, 2)  # slower again, though still logging: all that waited
    indexer.once()
    assert indexed_lines(log_dir) == all_lines(log_dir)
    for store, _inode in indexer.stores.values():
        store.close()
