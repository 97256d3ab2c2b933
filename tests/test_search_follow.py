"""``search --follow`` as a real process beside a real logger: across a faked midnight
(libfaketime on the logger), size-part switches and the old day's compression, and a
clean stop (exit 0, nothing on stderr) on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serverdb
from conftest import (
    LIBFAKETIME,
    LoggerProcess,
    committed_lines,
    day_files,
    faked,
    logger_command,
    wait_until,
)
from test_groupcommit import Ticks
from test_position import MARCH_1, make_pipeline

from dead_drop_logger.record.groupcommit import SAVE_EVERY


class FollowingSearch:
    """``dead-drop-logger search --follow --json ARGS``, its output in files."""

    def __init__(self, log_dir: Path, *args: str) -> None:
        self.out = log_dir.parent / "follow-out.json"
        self.err = log_dir.parent / "follow-err.txt"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    *logger_command(),
                    "search",
                    "--log-dir",
                    str(log_dir),
                    "--follow",
                    "--json",
                    "--interval",
                    "0.05",
                    *args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def ids(self) -> list[int]:
        return [json.loads(line)["id"] for line in self.printed().splitlines()]

    def printed(self) -> bytes:
        """The whole lines printed so far."""
        raw = self.out.read_bytes()
        return raw[: raw.rfind(b"\n") + 1]

    def handles_signals(self) -> bool:
        """Whether it has installed its SIGINT and SIGTERM handlers (SigCgt in /proc)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        return all(caught & (1 << (sig - 1)) for sig in (signal.SIGINT, signal.SIGTERM))

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture
def following() -> Iterator[Callable[..., FollowingSearch]]:
    started: list[FollowingSearch] = []

    def make(log_dir: Path, *args: str) -> FollowingSearch:
        started.append(FollowingSearch(log_dir, *args))
        return started[-1]

    yield make
    for search in started:
        if search.proc.poll() is None:
            search.proc.kill()
            search.proc.wait()


def juno_sends(conn: object, count: int, stamp: str, word: str) -> list[int]:
    """``count`` sends from juno (each plus its CC copy, also from juno)."""
    ids: list[int] = []
    for i in range(count):
        ids += serverdb.send(conn, "juno", "vega", f"{word} {i} " + "x" * 200, timestamp=stamp)
    return ids


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed")
def test_follow_crosses_midnight_parts_and_compression(
    server_db: Path,
    log_dir: Path,
    logger: Callable[..., LoggerProcess],
    following: Callable[..., FollowingSearch],
) -> None:
    conn = serverdb.connect(server_db)
    before = juno_sends(conn, 3, "2026-03-01T23:59:40", "earlier")
    serverdb.send(conn, "vega", "atlas", "not juno", timestamp="2026-03-01T23:59:41")
    proc = logger(
        "--import-historical",
        "--max-bytes",
        "1KB",
        "--compress-after",
        "0",
        "--retention-days",
        "0",
        env=faked("2026-03-01 23:59:50"),
    ).start()
    proc.wait_ready()
    search = following(log_dir, "--from", "juno")
    wait_until(lambda: search.ids() == before, what="the messages logged before")

    evening = juno_sends(conn, 4, "2026-03-01T23:59:55", "evening")
    wait_until(lambda: search.ids() == before + evening, what="the evening's parts")
    assert len(list(log_dir.glob("messages-2026-03-01.*.json"))) >= 2

    wait_until(
        lambda: (
            list(log_dir.glob("messages-2026-03-01*.json.gz"))
            and not list(log_dir.glob("messages-2026-03-01*.json"))
        ),
        what="midnight, and the old day compressed",
    )
    morning = juno_sends(conn, 4, "2026-03-02T00:00:05", "morning")
    late = juno_sends(conn, 1, "2026-03-01T23:59:59", "late")  # a new part after the .gz
    wait_until(
        lambda: (
            search.ids() == before + evening + morning + late
            or sorted(search.ids()) == sorted(before + evening + morning + late)
        ),
        what="the morning's and the late lines, once each",
    )
    assert list(log_dir.glob("messages-2026-03-01.*.json"))  # the late line's new part
    assert search.stop(signal.SIGINT) == 0
    assert search.err.read_text() == ""
    assert sorted(search.ids()) == sorted(before + evening + morning + late)
    assert proc.stop() == 0
    conn.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_follow_stops_cleanly(
    server_db: Path,
    log_dir: Path,
    logger: Callable[..., LoggerProcess],
    following: Callable[..., FollowingSearch],
    sig: int,
) -> None:
    proc = logger().start()
    proc.wait_ready()
    search = following(log_dir, "--contains", "needle")
    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "vega", "a needle in the logs")
    wait_until(lambda: search.ids() == sent, what="the live match")
    assert search.stop(sig) == 0
    assert search.err.read_text() == ""
    conn.close()
    assert proc.stop() == 0


def test_follow_with_no_match_still_exits_zero_on_a_signal(
    log_dir: Path, following: Callable[..., FollowingSearch]
) -> None:
    log_dir.mkdir()
    search = following(log_dir, "--from", "nobody")
    wait_until(search.handles_signals, what="the search to be ready for signals")
    assert search.stop(signal.SIGTERM) == 0
    assert search.err.read_text() == ""


def test_a_signal_landing_inside_the_follow_wait_cannot_deadlock_it() -> None:
    """The handler runs in the main thread, possibly while that thread holds the stop
    event's internal lock inside ``wait()``: setting it there must complete (a plain
    ``threading.Event`` deadlocks). Reproduced deterministically: the lock held, then
    the handler that --follow installs, called as Python would call it."""
    code = (
        "import signal\n"
        "from dead_drop_logger.control.commands import common\n"
        "stop = common.stop_on_signals()\n"
        "with stop._cond:\n"
        "    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)\n"
        "print(stop.is_set())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False
    )
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr


def test_follow_starts_as_tail_f_with_the_last_ten_matches(
    server_db: Path,
    log_dir: Path,
    logger: Callable[..., LoggerProcess],
    following: Callable[..., FollowingSearch],
) -> None:
    """Fifteen matches are logged before it starts: it prints the last ten, then each
    match logged later, once each and in order; and it keeps running."""
    conn = serverdb.connect(server_db)
    proc = logger().start()
    proc.wait_ready()
    earlier = [serverdb.send(conn, "juno", "vega", f"needle {i}")[0] for i in range(15)]
    wait_until(
        lambda: set(earlier) <= {line.id for line in committed_lines(log_dir)}, what="their commit"
    )
    search = following(log_dir, "needle", "--no-cc")
    wait_until(lambda: search.ids() == earlier[-10:], what="the last ten matches")
    later = [serverdb.send(conn, "juno", "vega", f"needle late {i}")[0] for i in range(3)]
    wait_until(lambda: search.ids() == earlier[-10:] + later, what="the live matches")
    assert search.proc.poll() is None
    assert search.stop(signal.SIGINT) == 0
    assert search.ids() == earlier[-10:] + later
    assert search.err.read_text() == ""
    conn.close()
    assert proc.stop() == 0


def test_follow_with_a_limit_is_the_last_n_then_live_never_the_first_n_and_exit(
    server_db: Path,
    log_dir: Path,
    logger: Callable[..., LoggerProcess],
    following: Callable[..., FollowingSearch],
) -> None:
    conn = serverdb.connect(server_db)
    proc = logger().start()
    proc.wait_ready()
    earlier = [serverdb.send(conn, "juno", "vega", f"needle {i}")[0] for i in range(6)]
    wait_until(
        lambda: set(earlier) <= {line.id for line in committed_lines(log_dir)}, what="their commit"
    )
    search = following(log_dir, "needle", "--no-cc", "-n", "3")
    wait_until(lambda: search.ids() == earlier[-3:], what="the last 3 matches")
    later = [serverdb.send(conn, "juno", "vega", f"needle late {i}")[0] for i in range(5)]
    wait_until(lambda: search.ids() == earlier[-3:] + later, what="every live match")
    assert search.proc.poll() is None  # still following after more than 3 matches
    assert search.stop(signal.SIGTERM) == 0
    assert search.ids() == earlier[-3:] + later
    conn.close()
    assert proc.stop() == 0


def test_follow_n_0_shows_only_new_matches(
    server_db: Path,
    log_dir: Path,
    logger: Callable[..., LoggerProcess],
    following: Callable[..., FollowingSearch],
) -> None:
    """As ``tail -n 0 -f``. When its first read is done cannot be seen from outside, so
    matches are sent (one a second) until one shows: every one shown is one of those, in
    order from the first shown, and none logged before it started."""
    conn = serverdb.connect(server_db)
    proc = logger().start()
    proc.wait_ready()
    earlier = [serverdb.send(conn, "juno", "vega", f"needle {i}")[0] for i in range(6)]
    wait_until(
        lambda: set(earlier) <= {line.id for line in committed_lines(log_dir)}, what="their commit"
    )
    search = following(log_dir, "needle", "--no-cc", "-n", "0")
    sent: list[int] = []
    last_send = [0.0]

    def a_new_match_shows() -> bool:
        if search.ids():
            return True
        if time.monotonic() - last_send[0] >= 1.0:
            sent.append(serverdb.send(conn, "juno", "vega", "needle new")[0])
            last_send[0] = time.monotonic()
        return False

    wait_until(a_new_match_shows, what="a new match")
    first = sent.index(search.ids()[0])
    wait_until(lambda: search.ids() == sent[first:], what="the new matches, in order")
    assert search.stop(signal.SIGINT) == 0
    assert search.ids() == sent[first:] and not set(earlier) & set(search.ids())
    conn.close()
    assert proc.stop() == 0


def test_follow_shows_committed_lines_only_and_resumes_after_a_crash_rewrote_them(
    server_db: Path, log_dir: Path, following: Callable[..., FollowingSearch]
) -> None:
    """A follower the server keeps busy appends lines it records as logged only at its
    next save (group commit); a crash cuts them back and logs them again, with other
    bytes when the rows changed meanwhile (read, deleted). ``--follow`` never shows
    those lines before they are committed, so it shows each message once, as it stays
    in the file, and goes on after a crash where it was (it printed uncommitted lines,
    then resumed at their byte offset: in the middle of the lines written again)."""
    ticks = Ticks()
    pipeline = make_pipeline(server_db, log_dir, ticks=ticks)
    pipeline.prepare(database_existed=False)
    committed = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)
    ticks.now += SAVE_EVERY
    committed += serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)  # recorded as logged at this save, with the one before
    uncommitted = serverdb.send_many(server_db, 3, timestamp=MARCH_1)
    pipeline.follow_once(hold=True)  # appended; the record on disk would cut it back
    assert [int(json.loads(x)["id"]) for x in day_files(log_dir)[0].read_bytes().splitlines()] == (
        committed + uncommitted
    )
    search = following(log_dir, "-n", "100")  # every match so far, then live
    wait_until(lambda: len(search.ids()) >= len(committed), what="the lines committed")
    pipeline.commits.drop()  # kill -9: nothing more is saved
    pipeline.close()
    conn = serverdb.connect(server_db)  # while the logger is down:
    conn.execute("UPDATE messages SET read_flag = 1 WHERE id > ?", (committed[-1],))  # read
    conn.execute("DELETE FROM messages WHERE id = ?", (uncommitted[-1],))  # the newest gone
    conn.close()
    again = make_pipeline(server_db, log_dir)  # the next start cuts back, logs them again
    again.catch_up()
    later = serverdb.send_many(server_db, 2, timestamp=MARCH_1)
    again.catch_up()
    again.close()
    final = b"".join(path.read_bytes() for path in day_files(log_dir))
    assert [json.loads(x)["read_flag"] for x in final.splitlines()][len(committed)] == 1
    wait_until(lambda: search.printed() == final, what="every line once, as it stays")
    assert search.ids() == committed + uncommitted[:-1] + later
    assert search.stop(signal.SIGTERM) == 0
    assert search.err.read_text() == ""
