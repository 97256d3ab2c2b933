"""Upgrading: a bare ``--db`` log directory from before rooms existed is used as it is.

``tests/data/upgrade-bare-db/`` is what the logger of commit 227b467 left after logging
ids 5..8 of a database with ids 1..4 as history (see upgrade_snapshot.py): state,
lock with its first-start mark, a day file, today's empty file and the symlink.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import serverdb
import upgrade_snapshot as snapshot
from conftest import LoggerProcess, logged_ids, wait_until

SNAPSHOT = Path(__file__).parent / "data" / "upgrade-bare-db"
DAY = "messages-2026-11-20.json"


def before() -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in SNAPSHOT.iterdir() if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_bare_db_log_dir_keeps_its_layout_position_and_files(tmp_path: Path, how: str) -> None:
    db = tmp_path / "my dbs:old" / "messages.db"  # a space and a colon stay one path
    db.parent.mkdir()
    snapshot.build_database(db)
    log_dir = tmp_path / "logs"
    shutil.copytree(SNAPSHOT, log_dir, symlinks=True)
    # The database is where the old logger found it: its state names that path.
    state_file = log_dir / ".dead-drop-logger.state"
    state = json.loads(state_file.read_bytes())
    assert state["database"] == "/tmp/upg/db/messages.db"  # where the snapshot was made
    state["database"] = str(db)
    state_file.write_text(json.dumps(state, separators=(",", ":"), sort_keys=True) + "\n")
    old = before()
    old[".dead-drop-logger.state"] = state_file.read_bytes()
    if how == "option":
        proc = LoggerProcess(db, log_dir, "--retention-days", "0")
    else:
        target = ["--log-dir", str(log_dir)]
        env = {"DEAD_DROP_DB_PATH": str(db)}
        proc = LoggerProcess(db, log_dir, "--retention-days", "0", target=target, env=env)
    proc.start()
    try:
        proc.wait_ready()
        assert "first start" not in proc.stderr()  # it carries on where the old one stopped
        new = serverdb.send_many(db, 1, prefix="after the upgrade", timestamp=snapshot.STAMP)
        wait_until(lambda: logged_ids(log_dir) == [5, 6, 7, 8, *new], what="the new sends")
    finally:
        assert proc.stop() == 0
    assert new == [9, 10]
    day = (log_dir / DAY).read_bytes()
    assert day.startswith(old[DAY])  # appended to, never rewritten
    # the first-start mark kept as it was; the owner recorded once after it
    owner = f"database {db}\n".encode()
    assert (log_dir / ".dead-drop-logger.lock").read_bytes() == old[
        ".dead-drop-logger.lock"
    ] + owner
    for name in old:
        assert (log_dir / name).exists(), name
    assert not [p for p in log_dir.iterdir() if p.is_dir()]  # no room directories
    assert not (log_dir / ".dead-drop-logger.rooms").exists()
    after = json.loads(state_file.read_bytes())
    assert (after["position"], after["database"]) == (10, str(db))
