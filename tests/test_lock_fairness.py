"""The writer lock is taken in turn: a follower waiting for it goes before a backfill's
next page, however long the backfill runs (it used to take the lock back at once)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import serverdb
from conftest import DEADLINE, logged_ids, wait_until
from test_position import make_pipeline

from dead_drop_logger.logdir.state import StateError, StateStore
from dead_drop_logger.record.pipeline import Progress


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
            # the follower queued while this page was in hand: no race with its thread
            wait_until(backfill.store.someone_waits, what="the follower to queue")

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
    # the follower went as soon as the page in hand was written: no page after it
    assert waited == [0], (waited, len(pages))


def test_a_stopped_process_holding_the_queue_does_not_block_the_follower(
    server_db: Path, log_dir: Path, logger
) -> None:
    """A writer suspended (Ctrl-Z) while it held the queue, waiting its turn: the queue
    only decides who goes next, so the follower goes for the writer lock directly."""
    proc = logger().start()
    proc.wait_ready()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, signal, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "os.kill(os.getpid(), signal.SIGSTOP)\n",
            str(log_dir / ".dead-drop-logger.queue"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        ids = serverdb.send_many(server_db, 5, prefix="while stopped")
        wait_until(lambda: logged_ids(log_dir) == ids, what="the messages logged")
    finally:
        holder.kill()
        holder.wait()
    assert proc.stop() == 0
    assert "held by another process" not in proc.stderr(), proc.stderr()


def test_a_writer_lock_held_too_long_is_named_in_the_error(log_dir: Path) -> None:
    log_dir.mkdir()
    held = os.open(log_dir / ".dead-drop-logger.lock", os.O_RDWR | os.O_CREAT, 0o600)
    queue = os.open(log_dir / ".dead-drop-logger.queue", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        fcntl.flock(queue, fcntl.LOCK_EX)  # a stopped waiter, too
        with pytest.raises(StateError) as caught, StateStore(log_dir).locked(patience=0.6):
            pass
    finally:
        os.close(held)
        os.close(queue)
    assert str(caught.value).startswith(f"{log_dir / '.dead-drop-logger.lock'} has been held")
