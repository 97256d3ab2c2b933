"""Crash points of an export: SIGKILL at each of its write/fsync/rename/ftruncate calls
(and link/unlink, sealed), then an export run again to the end: every id exactly once.

Why here: a history page going to files the pending record on disk already covers is
appended without a save or an fsync (see pipeline's BACKFILL_HOLD), so a kill between
two saves leaves lines in the files that the state does not record. The next run must
cut them back and write them again, once. The database holds three pages of history
(5,000 rows each) over two days: the first page opens the first day's file, the second
finishes that day (covered) and opens the next (a save first), the third is covered.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import serverdb
from conftest import DEADLINE, age_identity
from encryptvariants import is_sealed
from faultkit import assert_clean, assert_exactly_once, needs_strace, strace_wrapper

SCRIPT = Path(__file__).resolve().parent.parent.parent / "export_historical.py"
# How many of each call to kill at, at most: a whole export makes about 13 writes, 15
# fsyncs, 4 renames and 3 ftruncates here (more when a slow machine ends more holds).
POINTS = {"write": 20, "fsync": 24, "rename": 8, "ftruncate": 4}
SEALED_POINTS = {**POINTS, "link": 8, "unlink": 8}
# Below these, every call is reached by any export of this database: each must be hit.
SURE = {"write": 8, "fsync": 8, "rename": 2}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("history") / "messages.db"
    serverdb.create(db)
    serverdb.send_many(db, 3_000, timestamp="2026-03-01T10:00:00")  # 6,000 rows (CCs)
    serverdb.send_many(db, 3_000, timestamp="2026-03-02T10:00:00")
    return db


def export(db: Path, log_dir: Path, options: list[str], wrapper: tuple[str, ...] = ()) -> int:
    where = ["--db", str(db), "--log-dir", str(log_dir), "--retention-days", "0"]
    done = subprocess.run(
        [*wrapper, sys.executable, str(SCRIPT), *where, *options],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert_clean(done.stderr)
    return done.returncode


@needs_strace
def test_an_export_killed_at_each_call_is_finished_by_the_next_exactly_once(
    history: Path, tmp_path: Path, encryption: str
) -> None:
    options, points = [], POINTS
    if is_sealed(encryption):
        options, points = ["--encrypt-to", age_identity()[1]], SEALED_POINTS
    hit: dict[str, int] = {}
    for call, most in points.items():
        for k in range(1, most + 1):
            log_dir = tmp_path / f"{call}-{k}"
            rule = f"inject={call}:signal=SIGKILL:when={k}"
            code = export(history, log_dir, options, (*strace_wrapper(Path("/dev/null"), rule),))
            if code == 0:  # the export ended before its k-th such call
                break
            hit[call] = k
            assert export(history, log_dir, options) == 0
            assert_exactly_once(log_dir, history)
    print(f"killed at each call up to: {hit}")
    for call, sure in SURE.items():
        assert hit.get(call, 0) >= sure, (call, hit)
