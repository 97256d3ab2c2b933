"""The writer lock is taken in turn: a follower waiting for it goes before a backfill's
next page, however long the backfill runs (it used to take the lock back at once)."""

from __future__ import annotations

import threading
from pathlib import Path

import serverdb
from conftest import DEADLINE, logged_ids
from test_position import make_pipeline

from dead_drop_logger.pipeline import Progress
from dead_drop_logger.state import StateStore


def test_a_waiting_follower_goes_before_the_backfills_next_page(
    server_db: Path, log_dir: Path
) -> None:
    ids = serverdb.send_many(server_db, 200)  # 400 rows: 80 history pages of 5
    backfill = make_pipeline(server_db, log_dir, page_size=1)
    backfill.prepare(database_existed=True)
    pages: list[int] = []
    started = threading.Event()
    waited: list[int] = []

    def page(step: Progress) -> None:
        pages.append(step.last_id)
        if len(pages) == 3:
            started.set()

    def follower() -> None:
        started.wait(DEADLINE)
        before = len(pages)
        with StateStore(log_dir).locked(patience=DEADLINE):
            waited.append(len(pages) - before)

    waiter = threading.Thread(target=follower)
    waiter.start()
    done = backfill.backfill(on_page=page)
    waiter.join(DEADLINE)
    assert done.lines == len(ids) and logged_ids(log_dir) == ids
    assert len(pages) == 80
    # the page in hand (and one more if the waiter was slow to queue), never the rest
    assert waited and waited[0] <= 3, (waited, len(pages))
