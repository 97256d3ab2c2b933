"""A symlink planted in the log directory is never written through (nor chmodded):
a day file's link is replaced by a new file, the temporary files are made afresh."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest
import serverdb
from conftest import FakeClock, logged_ids, wait_until

from dead_drop_logger.control import pidfile
from dead_drop_logger.control.pidfile import PidFile
from dead_drop_logger.keep import compress
from dead_drop_logger.keep.housekeeping import Policy
from dead_drop_logger.logdir import layout
from dead_drop_logger.logdir.state import STATE_NAME, State, StateStore
from dead_drop_logger.record.rotation import Rotator

DAY = "2026-03-01"
VICTIM = b"someone else's file\n"


def victim(tmp_path: Path, name: str = "victim") -> Path:
    path = tmp_path / name
    path.write_bytes(VICTIM)
    path.chmod(0o644)
    return path


def untouched(path: Path) -> bool:
    return path.read_bytes() == VICTIM and stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_day_file_planted_as_a_symlink_is_replaced_not_written_through(
    server_db: Path, tmp_path: Path, log_dir: Path, logger
) -> None:
    target = victim(tmp_path)
    state_target = victim(tmp_path, "victim-of-the-state")
    log_dir.mkdir(mode=0o700)
    day = log_dir / f"messages-{DAY}.json"
    day.symlink_to("../victim")
    (log_dir / f"{STATE_NAME}.tmp").symlink_to("../victim-of-the-state")
    proc = logger("--retention-days", "0").start()
    proc.wait_ready()
    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "atlas", "hello", timestamp=f"{DAY}T10:00:00")
    conn.close()
    wait_until(lambda: logged_ids(log_dir) == sent, what="the send logged")
    assert proc.stop() == 0
    assert untouched(target) and untouched(state_target)
    assert not day.is_symlink() and stat.S_IMODE(day.stat().st_mode) == 0o600
    assert not (log_dir / STATE_NAME).is_symlink()
    assert proc.stderr().count("was a symbolic link") == 1, proc.stderr()


def test_the_state_temp_file_is_made_afresh(tmp_path: Path) -> None:
    target = victim(tmp_path)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / f"{STATE_NAME}.tmp").symlink_to(target)
    store = StateStore(log_dir)
    store.save(State(position=7))
    assert untouched(target)
    assert not (log_dir / STATE_NAME).is_symlink()
    loaded = store.load()
    assert loaded is not None and loaded.position == 7


def test_the_compression_temp_file_is_made_afresh(tmp_path: Path) -> None:
    target = victim(tmp_path)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    plain = log_dir / f"messages-{DAY}.json"
    plain.write_bytes(b'{"id":1}\n')
    layout.compress_temp_path(plain).symlink_to(target)
    packed = compress.compress(plain)
    assert untouched(target)
    assert gzip.decompress(packed.read_bytes()) == b'{"id":1}\n'
    assert not packed.is_symlink() and sorted(os.listdir(log_dir)) == [packed.name]


def test_a_dangling_link_at_todays_file_never_creates_its_target(tmp_path: Path) -> None:
    """Midnight (and start) makes today's empty file: never through a planted link."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / f"messages-{DAY}.json").symlink_to("../created-through-the-link")
    Rotator(log_dir, FakeClock(f"{DAY}T12:00:00"), policy=Policy(retention_days=0)).tick()
    assert not (tmp_path / "created-through-the-link").exists()


def test_the_pid_files_side_file_is_made_afresh(tmp_path: Path) -> None:
    """A link planted at the PID file's side file's temporary name
    (``logger.pid.json.tmp -> victim``) is never written through nor chmodded."""
    target = victim(tmp_path)
    path = tmp_path / "run" / "logger.pid"
    path.parent.mkdir()
    tmp = pidfile.info_path(path).with_name(pidfile.info_path(path).name + ".tmp")
    tmp.symlink_to(target)
    with PidFile(path, {"database": "x.db"}):
        assert pidfile.read(path).info["database"] == "x.db"
    assert untouched(target)


CRAFTED = {
    "format": 1,
    "position": 0,
    "logged": [],
    "fingerprint": None,
    "database": "",
    "importing": False,
    "skipped": [],
}


@pytest.mark.parametrize("how", ["planted link", "relative name", "absolute name"])
def test_a_crafted_state_never_cuts_a_file_outside_the_log_directory(
    server_db: Path, tmp_path: Path, log_dir: Path, logger, how: str
) -> None:
    """A state whose pending record names ``../victim`` or an absolute path, or a state
    file planted as a link to such a state, is refused (set aside and rebuilt from the
    log files), with one line: the file it names is never cut back."""
    target = victim(tmp_path)
    name = str(target) if how == "absolute name" else "../victim"
    crafted = json.dumps({**CRAFTED, "pending": {name: [0, 1]}})
    log_dir.mkdir(mode=0o700)
    if how == "planted link":
        (tmp_path / "crafted.state").write_text(crafted)
        (log_dir / STATE_NAME).symlink_to(tmp_path / "crafted.state")
    else:
        (log_dir / STATE_NAME).write_text(crafted)
    proc = logger("--retention-days", "0").start()
    proc.wait_ready()
    sent = serverdb.send_many(server_db, 2, timestamp=f"{DAY}T10:00:00")
    wait_until(lambda: logged_ids(log_dir) == sent, what="the sends logged")
    assert proc.stop() == 0
    assert untouched(target)
    why = "is a symbolic link" if how == "planted link" else "is not a file in the log directory"
    assert [line for line in proc.stderr().splitlines() if "WARNING" in line] == [
        line for line in proc.stderr().splitlines() if why in line
    ], proc.stderr()
    assert proc.stderr().count(why) == 1, proc.stderr()
    assert not (log_dir / STATE_NAME).is_symlink()
