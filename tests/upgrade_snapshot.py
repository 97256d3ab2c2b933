"""How tests/data/upgrade-bare-db/ was made: the log directory a bare ``--db`` logger
from before rooms existed (commit 227b467, the main branch then) leaves behind.

    git archive 227b467 dead_drop_logger | tar -x -C /tmp/old
    python tests/upgrade_snapshot.py /tmp/old /tmp/snapshot

then copy /tmp/snapshot/logs/ to tests/data/upgrade-bare-db/. test_upgrade.py rebuilds
the same database (fixed timestamps) and runs today's logger on a copy of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import serverdb

STAMP = "2026-11-20T10:00:00.000001"


def build_database(db: Path) -> None:
    """The database as it was when the snapshot was taken (ids 1..8)."""
    serverdb.create(db)
    serverdb.send_many(db, 2, prefix="history", timestamp=STAMP)
    serverdb.send_many(db, 2, prefix="logged before", timestamp=STAMP)


def main() -> None:
    old_code, work = Path(sys.argv[1]), Path(sys.argv[2])
    db, logs, err = work / "db" / "messages.db", work / "logs", work / "stderr"
    db.parent.mkdir(parents=True)
    serverdb.create(db)
    serverdb.send_many(db, 2, prefix="history", timestamp=STAMP)
    cmd = [sys.executable, "-m", "dead_drop_logger", "run", "--db", str(db)]
    cmd += ["--log-dir", str(logs), "--poll-interval", "0.05", "--retention-days", "0"]
    env = {**os.environ, "PYTHONPATH": str(old_code)}
    with open(err, "w") as stderr:
        proc = subprocess.Popen(cmd, env=env, stderr=stderr, cwd="/")
    while "INFO: following" not in err.read_text():
        time.sleep(0.05)
    serverdb.send_many(db, 2, prefix="logged before", timestamp=STAMP)
    day = logs / "messages-2026-11-20.json"
    while not day.exists() or day.read_bytes().count(b"\n") < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0


if __name__ == "__main__":
    main()
