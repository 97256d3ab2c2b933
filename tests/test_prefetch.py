"""Reading ahead never changes what is read: a prefetched page is used only for the very
arguments it was read with, and a backfill through it logs every message once."""

from __future__ import annotations

from pathlib import Path

import serverdb
from conftest import logged_ids

from dead_drop_logger.clock import SystemClock
from dead_drop_logger.pipeline import Pipeline
from dead_drop_logger.prefetch import Prefetcher
from dead_drop_logger.source import Page, Source
from dead_drop_logger.writer import DayWriter


def ids_of(page: Page) -> list[int]:
    return [int(line[6:].split(b",")[0]) for run in page.runs for line in run.data.splitlines()]


def test_a_page_read_ahead_is_used_only_for_its_own_arguments(server_db: Path) -> None:
    serverdb.send_many(server_db, 20)  # ids 1..40
    pages = Prefetcher(Source(server_db))
    try:
        assert ids_of(pages.read(0, None, 10)) == list(range(1, 11))
        # The next page (after 10) was read ahead; ask for something else instead.
        assert ids_of(pages.read(5, None, 10)) == list(range(6, 16))
        assert ids_of(pages.read(15, 30, 10)) == list(range(16, 26))
        assert ids_of(pages.read(25, 30, 10)) == list(range(26, 31))
        serverdb.send_many(server_db, 1)  # 41, 42
        assert ids_of(pages.read(30, None, 10)) == list(range(31, 41))
        assert ids_of(pages.read(40, None, 10)) == [41, 42]
    finally:
        pages.close()


def test_backfill_through_read_ahead_logs_each_message_once(server_db: Path, log_dir: Path) -> None:
    serverdb.send_many(server_db, 150)
    source = Source(server_db)
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, SystemClock()), page_size=7)
    pipeline.prepare(database_existed=True)
    serverdb.send_many(server_db, 3)  # new since the start: the follower's, not history
    done = pipeline.backfill()
    pipeline.catch_up()
    pipeline.close()
    assert done.lines == 300
    assert logged_ids(log_dir) == list(range(1, 307))
