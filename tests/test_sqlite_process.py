"""SQLite's memory statistics go off only when nothing of SQLite is alive and the
process has one thread (see record/sqlite_process). Each case runs in an interpreter
of its own, as the logger's processes call it: first thing, before any connection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import DEADLINE

PRELUDE = """
import ctypes, sqlite3, threading
from pathlib import Path
from dead_drop_logger.record import sqlite_process
from dead_drop_logger.record.sqlite_process import stop_memory_statistics
lib = ctypes.CDLL(str(sqlite_process._loaded_library(Path("/proc/self/maps"))))
lib.sqlite3_memory_used.restype = ctypes.c_int64
"""


def child(code: str, tmp_path: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_first_thing_in_a_process_they_go_off_and_connections_work(tmp_path: Path) -> None:
    said = child(
        """
        print(stop_memory_statistics())
        conn = sqlite3.connect("x.db")
        conn.execute("CREATE TABLE t (v)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 1000)
        conn.commit()
        print(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        print(lib.sqlite3_memory_used())  # not counted: the statistics are off
        print(stop_memory_statistics())  # again, with a connection open: nothing done
        print(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        """,
        tmp_path,
    )
    assert said == ["True", "1000", "0", "True", "1000"]


def test_with_a_connection_open_nothing_changes(tmp_path: Path) -> None:
    said = child(
        """
        conn = sqlite3.connect(":memory:")
        print(stop_memory_statistics())
        print(lib.sqlite3_memory_used() > 0)  # still counted
        print(conn.execute("SELECT 1").fetchone()[0])
        """,
        tmp_path,
    )
    assert said == ["False", "True", "1"]


def test_with_another_thread_running_nothing_changes(tmp_path: Path) -> None:
    said = child(
        """
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        print(stop_memory_statistics())
        stop.set()
        other.join()
        conn = sqlite3.connect(":memory:")
        print(lib.sqlite3_memory_used() > 0)
        """,
        tmp_path,
    )
    assert said == ["False", "True"]


def test_without_a_shared_library_to_find_nothing_changes(tmp_path: Path) -> None:
    said = child(
        """
        maps = Path("maps")
        maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\\n")
        print(stop_memory_statistics(maps))
        print(stop_memory_statistics(Path("no such file")))
        conn = sqlite3.connect(":memory:")
        print(lib.sqlite3_memory_used() > 0)
        """,
        tmp_path,
    )
    assert said == ["False", "False", "True"]


def test_already_off_nothing_is_shut_down_under_an_open_connection(tmp_path: Path) -> None:
    """With the statistics off (a build without them, or done before), the count reads
    0 whatever is alive: that is no sign of nothing alive, so nothing is shut down."""
    said = child(
        """
        print(stop_memory_statistics())
        conn = sqlite3.connect(":memory:")
        sqlite_process._stopped = False  # as if never done here: a build without them
        print(stop_memory_statistics())
        print(conn.execute("SELECT 1").fetchone()[0])
        """,
        tmp_path,
    )
    assert said == ["True", "True", "1"]
