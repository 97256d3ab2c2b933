"""Clock jumps: the wall clock leaping backwards and forwards loses and doubles nothing.

The logger's only use of the wall clock is the day a message without a usable
timestamp is filed under (waits use monotonic time), so the Follower runs here with
an injected clock that jumps years either way on every reading.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from pathlib import Path

import serverdb
from conftest import age_identity, file_bytes, log_lines, wait_until
from encryptvariants import is_sealed
from faultkit import assert_exactly_once, wait_all_logged

from dead_drop_logger.config import Settings
from dead_drop_logger.logdir import layout
from dead_drop_logger.record.follow import Follower

BASE = dt.datetime(2030, 6, 15, 12, 0, tzinfo=dt.UTC)
JUMPS = [dt.timedelta(0), dt.timedelta(days=-3650), dt.timedelta(days=400), dt.timedelta(hours=-13)]


class JumpingClock:
    """Each reading lands somewhere else: back ten years, forward, back again."""

    def __init__(self) -> None:
        self._offsets = itertools.cycle(JUMPS)
        self._lock = threading.Lock()
        self.days: set[str] = set()

    def now(self) -> dt.datetime:
        with self._lock:
            moment = BASE + next(self._offsets)
            self.days.add(moment.date().isoformat())
            return moment


def test_clock_jumping_back_and_forth_loses_and_doubles_nothing(
    server_db: Path, log_dir: Path, encryption: str
) -> None:
    clock = JumpingClock()
    # Retention is off: it deletes files older than N days *by this clock*, on purpose,
    # so a clock years ahead would prune every file (see the hardening report). What is
    # checked here is the follower: every line written once, whatever the clock says.
    # Sealed, the unsealed tail is also sealed whenever the clock's day changes.
    sealing = (
        {"encrypt_to": (age_identity()[1],), "seal_interval": 0.2} if is_sealed(encryption) else {}
    )
    settings = Settings(
        db=server_db, log_dir=log_dir, poll_interval=0.02, retention_days=0, **sealing
    )
    follower = Follower(settings, clock=clock)
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: (log_dir / ".dead-drop-logger.state").exists(), what="the start")
        conn = serverdb.connect(server_db)
        for i in range(40):
            stamp = "" if i % 2 else dt.datetime.now().isoformat()  # "": no usable day
            serverdb.send(conn, "juno", "vega", f"jump {i}", timestamp=stamp)
        conn.close()
        wait_all_logged(log_dir, server_db)
    finally:
        follower.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert_exactly_once(log_dir, server_db)
    undated = set()
    for path, raw in file_bytes(log_dir):  # plain day files, or segments decrypted
        entry = layout.parse(path)
        assert entry is not None, path
        if any(b'"timestamp":""' in line for line in raw.splitlines()):
            undated.add(entry.day.isoformat())
    assert undated and undated <= clock.days
    assert len(log_lines(log_dir)) == len(serverdb.all_ids(server_db))
