"""logrotate (or a user) rotating a day file under the logger: renamed away and made
anew empty (logrotate's default ``create``), or copied and emptied in place
(``copytruncate``). The lines it held were logged once and live on in the rotated
copy: they are not logged again (as for a file renamed or deleted). A file shortened
in place but not emptied is not a rotation: what it lacks is logged again (see
docs/rotation.md#logrotate)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import serverdb
from conftest import LoggerProcess, day_files, logged_ids, wait_until


def rotate(day: Path, rotated: Path, how: str) -> None:
    if how == "create":  # logrotate's default: rename, then create an empty file
        day.rename(rotated)
        os.close(os.open(day, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    else:  # copytruncate: copy, then empty the original in place
        shutil.copy2(day, rotated)
        os.truncate(day, 0)


def ids_in(path: Path) -> list[int]:
    return [int(line.split(b",", 1)[0].split(b":")[1]) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("when", ["running", "stopped"])
@pytest.mark.parametrize("how", ["create", "copytruncate"])
def test_a_rotated_day_file_is_not_logged_again(
    server_db: Path, log_dir: Path, tmp_path: Path, how: str, when: str
) -> None:
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    first = serverdb.send_many(server_db, 5)
    wait_until(lambda: logged_ids(log_dir) == first, what="the first messages logged")
    if when == "stopped":
        assert live.stop() == 0, live.stderr()
    (day,) = [path for path in day_files(log_dir) if path.stat().st_size]
    rotated = tmp_path / "rotated.json"
    rotate(day, rotated, how)
    if when == "stopped":
        live.start()
        live.wait_ready()
    more = serverdb.send_many(server_db, 3)
    wait_until(lambda: set(more) <= set(logged_ids(log_dir)), what="the next messages")
    also = serverdb.send_many(server_db, 2)  # and it goes on appending after them
    wait_until(lambda: set(also) <= set(logged_ids(log_dir)), what="more messages")
    assert live.stop() == 0, live.stderr()
    assert ids_in(rotated) == first
    assert logged_ids(log_dir) == more + also, live.stderr()
    assert "emptied or made anew" in live.stderr()


def test_a_day_file_shortened_but_not_emptied_logs_what_it_lacks_again(
    server_db: Path, log_dir: Path
) -> None:
    """Not a rotation (no rotation tool leaves half a file): taken as a backup copied
    over it, whose missing lines are logged again, never lost."""
    live = LoggerProcess(server_db, log_dir, "--retention-days", "0").start()
    live.wait_ready()
    first = serverdb.send_many(server_db, 6)
    wait_until(lambda: logged_ids(log_dir) == first, what="the first messages logged")
    (day,) = [path for path in day_files(log_dir) if path.stat().st_size]
    lines = day.read_bytes().splitlines(keepends=True)
    with open(day, "r+b") as fh:  # the last three lines cut off, in place
        fh.truncate(sum(len(line) for line in lines[:-3]))
    more = serverdb.send_many(server_db, 2)
    wait_until(lambda: len(logged_ids(log_dir)) >= len(first + more), what="all logged")
    assert live.stop() == 0, live.stderr()
    assert logged_ids(log_dir) == first + more, live.stderr()
