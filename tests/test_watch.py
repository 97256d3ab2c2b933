"""Waking on change: the Waker and the Watcher in process, then the real logger woken by
the database's own files (and by nothing else), polling only where notifications fail."""

from __future__ import annotations

import fcntl
import math
import re
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serverdb
from conftest import DEADLINE, LoggerProcess, logged_ids, run_command, wait_until

from dead_drop_logger.control.indexer import THREAD_NAME as INDEXER
from dead_drop_logger.record.watch import (
    CHANGE,
    RECHECK,
    RECHECKS,
    STOP,
    TIMEOUT,
    Waker,
    WakingStopEvent,
    Watcher,
    WatcherUnavailable,
    database_files,
    watching_database,
)

Logger = Callable[..., LoggerProcess]
NEVER = "600"  # a poll interval no test waits out: what is logged, a change woke
WAKE = re.compile(r"DEBUG: woke: (\w+)(?: \((.*)\))?$", re.M)
DB_FILES = {"messages.db", "messages.db-wal", "messages.db-journal", "."}


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the Waker -------------------------------------------------------------------------


def test_a_burst_is_one_wake_then_rechecks_then_the_timer() -> None:
    clock = FakeMonotonic()
    waker = Waker(gap=0.02, clock=clock)
    for i in range(1000):
        waker.ring("messages.db-wal" if i % 2 else "messages.db")
    first = waker.wait(0)
    assert (first.reason, first.names) == (CHANGE, ("messages.db", "messages.db-wal"))
    waker.ring("messages.db-wal")  # within the gap: held back, not a second wake-up
    assert waker.wait(0).reason == TIMEOUT
    clock.now += 0.02
    assert waker.wait(0).names == ("messages.db-wal",)  # the gap is over
    changed_at = clock.now
    # Rechecks at 2, 3, 5 ... 200 ms after the change (the commit may not be visible
    # yet when its WAL write is noticed); one passed by a slow tick is skipped.
    seen: list[float] = []
    for _ in range(300):
        clock.now += 0.001
        if waker.wait(0).reason == RECHECK:
            seen.append((clock.now - changed_at) * 1000)
    assert len(seen) == len(RECHECKS)
    for at, due in zip(seen, RECHECKS, strict=True):
        assert due * 1000 - 0.01 <= at <= due * 1000 + 1.01  # the clock steps by 1 ms
    clock.now += 0.05
    assert waker.wait(0).reason == TIMEOUT
    waker.ring("messages.db")
    assert waker.wait(0).reason == CHANGE
    clock.now += 0.01  # a slow tick: past the 2, 3, 5 and 8 ms rechecks
    assert waker.wait(0).reason == RECHECK
    clock.now += 0.001
    assert waker.wait(0).reason == TIMEOUT  # the next is at 12 ms, not at once
    assert waker.counts[CHANGE] == 3


def test_a_big_batch_widens_the_gap_and_rows_found_end_the_rechecks() -> None:
    clock = FakeMonotonic()
    waker = Waker(gap=0.02, busy_gap=0.05, clock=clock)
    waker.ring("messages.db-wal")
    assert waker.wait(0).reason == CHANGE
    waker.pace(1000)  # a writer flat out: batches no closer than busy_gap
    waker.ring("messages.db-wal")
    clock.now += 0.03
    assert waker.wait(0).reason == TIMEOUT  # no recheck either: a change waits its turn
    clock.now += 0.02
    assert waker.wait(0).reason == CHANGE
    waker.pace(0)  # nothing visible yet: the quick rechecks go on
    clock.now += 0.002
    assert waker.wait(0).reason == RECHECK
    waker.pace(2)  # found: one recheck a gap (20.3 ms for 2 rows) later, then no more
    clock.now += 0.02
    assert waker.wait(0).reason == TIMEOUT
    clock.now += 0.001
    assert waker.wait(0).reason == RECHECK
    clock.now += 1
    assert waker.wait(0).reason == TIMEOUT
    waker.ring("messages.db-wal")  # quiet again: a lone message is served at once
    assert waker.wait(0).reason == CHANGE


def test_a_change_rung_in_the_gap_wakes_a_blocked_wait_at_its_turn() -> None:
    """Rung from another thread while the loop waits out the gap, a change wakes no one
    then (no futex round per event): the wait itself ends at the gap, with the change.
    Past the gap, the first change wakes the waiting loop at once.

    The Waker's clock is the test's (its waits still block in real time, for as long as
    that clock says): the rings are surely inside the gap, however late the test runs,
    and the gap ends when the test says, not when a loaded machine gets round to it."""
    clock = FakeMonotonic()
    gap = RECHECKS[-1] * 5  # well past the rechecks' end
    waker = Waker(gap=gap, clock=clock)
    waker.ring("messages.db-wal")
    assert waker.wait(600).reason == CHANGE  # the first one at once; a gap starts
    changed_at = clock.now
    got: list[tuple[str, ...]] = []

    def wait_for_change() -> None:  # (a wait longer than the join's deadline)
        while (wake := waker.wait(600)).reason == RECHECK:
            pass
        got.append(wake.names)

    try:
        thread = threading.Thread(target=wait_for_change)
        thread.start()
        clock.now = changed_at + RECHECKS[-1] * 2  # the rechecks are over, the gap is not
        wait_until(lambda: not waker.rechecking, what="the waiting loop's last recheck")
        waker.ring("messages.db-wal")  # inside the gap: wakes no one
        waker.ring("messages.db")
        clock.now = changed_at + gap  # the gap's end: the wait in progress ends by itself
        thread.join(DEADLINE)
        assert got == [("messages.db-wal", "messages.db")]
        changed_at = clock.now
        thread = threading.Thread(target=wait_for_change)
        thread.start()
        clock.now = changed_at + gap + RECHECKS[-1] * 2  # past the gap and its rechecks
        wait_until(lambda: not waker.rechecking, what="the waiting loop's last recheck")
        waker.ring("messages.db-wal")  # the loop waits on (600 s): this ring must wake it
        thread.join(DEADLINE)
        assert got[1:] == [("messages.db-wal",)]
    finally:
        waker.stop()  # (a wait that failed to end ends here, not 600 s later)


def test_stop_ends_a_long_wait_at_once() -> None:
    waker = Waker()
    stop = WakingStopEvent(waker)  # what Follower.stop is: setting it, from anywhere, wakes
    woke: list[str] = []
    thread = threading.Thread(target=lambda: woke.append(waker.wait(600).reason))
    thread.start()
    stop.set()
    thread.join(DEADLINE)
    assert woke == [STOP] and stop.is_set()


class FakePump:
    """A watcher without a thread, in fake time: a pump sleeps out its timeout (the
    clock moves) unless it reads the events and one is due by then; a change that
    happened is delivered by the first pump that reads the events."""

    def __init__(self, clock: FakeMonotonic, waker: Waker) -> None:
        self.clock = clock
        self.waker = waker
        self.kernel: list[tuple[float, str]] = []  # (when it happens, the name)
        self.calls: list[tuple[float, bool]] = []  # (when, whether it read the events)
        self.pokes = 0

    def pump(self, timeout: float, *, events: bool) -> None:
        self.calls.append((self.clock.now, events))
        due = [at for at, _ in self.kernel if at <= self.clock.now + timeout]
        if events and due:
            self.clock.now = max(self.clock.now, min(due))
            for name in [n for at, n in self.kernel if at <= self.clock.now]:
                self.waker.ring(name)
            self.kernel = [(at, n) for at, n in self.kernel if at > self.clock.now]
        else:
            self.clock.now += timeout

    def poke(self) -> None:
        self.pokes += 1


def test_the_loop_reads_the_events_itself_but_never_inside_the_gap() -> None:
    """A Waker with a pump (a watcher without a thread): a change at once, then the
    events are not read before the gap's end; one that came in the gap wakes it then."""
    clock = FakeMonotonic()
    waker = Waker(gap=0.02, clock=clock)
    assert waker.pump is None  # none unless a watcher without a thread gives one
    pump = waker.pump = FakePump(clock, waker)
    pump.kernel = [(100.5, "messages.db-wal")]
    assert waker.wait(600).names == ("messages.db-wal",)  # the leading edge, at once
    changed_at = clock.now
    assert changed_at == 100.5 and all(events for _, events in pump.calls)
    before = len(pump.calls)
    pump.kernel = [(changed_at + 0.001, "messages.db-wal"), (changed_at + 0.004, "messages.db")]
    reasons = []
    while (wake := waker.wait(600)).reason == RECHECK:
        reasons.append(wake.reason)
    # The rechecks inside the gap (2 ... 18 ms), then the change at the gap's end.
    assert reasons == [RECHECK] * sum(t < 0.02 for t in RECHECKS)
    assert (wake.reason, wake.names) == (CHANGE, ("messages.db-wal", "messages.db"))
    assert clock.now == pytest.approx(changed_at + 0.02)
    in_gap = [events for at, events in pump.calls[before:] if at < changed_at + 0.02]
    assert in_gap and not any(in_gap)  # inside the gap: the pipe alone, never the events
    at, events = pump.calls[-1]  # at the gap's end: the events read, the change found
    assert events and at == pytest.approx(changed_at + 0.02)
    waker.pace(1000)  # a writer flat out: the gap widens, the events wait 50 ms
    pump.kernel = [(clock.now + 0.001, "messages.db-wal")]
    assert waker.wait(600).reason == CHANGE
    assert clock.now == pytest.approx(changed_at + 0.07)
    waker.stop()
    assert pump.pokes == 1  # stop() ends the pump's poll() (see the real one below)
    assert waker.wait(600).reason == STOP


# -- the Watcher -----------------------------------------------------------------------


def next_change(waker: Waker) -> tuple[str, ...]:
    """The names of the next change wake-up (a recheck on the way is skipped)."""
    while (wake := waker.wait(DEADLINE)).reason == RECHECK:
        pass
    assert wake.reason == CHANGE, wake
    return wake.names


@pytest.fixture(params=[True, False], ids=["thread", "no thread"])
def watcher(request: pytest.FixtureRequest) -> Iterator[Watcher]:
    """A watcher with its thread (rooms), and without (the waiting loop reads it)."""
    w = Watcher(retry=0.05, thread=request.param)
    yield w
    w.close()


def in_poll(task: Path) -> bool:
    """Whether the thread (``/proc/PID/task/TID``) is blocked in ``poll()``."""
    syscall = (task / "syscall").read_text().split()[:1]
    return "poll" in (task / "wchan").read_text() or syscall in (["7"], ["271"])  # x86-64


def unread_event_bytes(watcher: Watcher) -> int:
    """How many bytes of events wait in the kernel, not read yet (FIONREAD)."""
    got = fcntl.ioctl(watcher._inotify.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", got)[0])


def test_without_a_thread_the_waiting_loop_reads_the_events(tmp_path: Path) -> None:
    threads = set(threading.enumerate())
    watcher = Watcher(retry=0.05, thread=False)
    try:
        # No thread of its own (compared as sets: an earlier test's reader thread may
        # end meanwhile, which a count would take for a change).
        assert set(threading.enumerate()) - threads == set()
        waker = Waker(gap=3600)  # after the first change, a gap no test waits out
        db = tmp_path / "messages.db"
        watcher.watch(tmp_path, database_files(db), waker)
        Path(f"{db}-wal").write_bytes(b"frame")
        assert next_change(waker) == ("messages.db-wal",)  # read by the wait, at once
        assert unread_event_bytes(watcher) == 0
        reasons: list[str] = []

        def wait_until_stopped() -> None:
            while (reason := waker.wait(600).reason) != STOP:
                reasons.append(reason)

        loop = threading.Thread(target=wait_until_stopped)
        loop.start()
        Path(f"{db}-wal").write_bytes(b"frame 2")  # inside the gap
        # The rechecks: all of them, or fewer where a slow tick on a loaded machine
        # passed some (they are skipped, not bunched).
        wait_until(lambda: reasons and not waker.rechecking, what="the rechecks to be over")
        # The loop sleeps out its gap on the stop pipe alone: the event stays unread.
        assert unread_event_bytes(watcher) > 0
        WakingStopEvent(waker).set()  # from another thread: ends the wait in poll() at once
        loop.join(DEADLINE)
        assert not loop.is_alive()
        assert 1 <= len(reasons) <= len(RECHECKS) and reasons == [RECHECK] * len(reasons)
    finally:
        watcher.close()
    assert waker.pump is None  # closed: the Waker is back to its timer alone
    assert waker.wait(0).reason == STOP


def test_without_a_thread_stop_ends_a_wait_for_events_at_once(tmp_path: Path) -> None:
    watcher = Watcher(thread=False)
    try:
        waker = Waker()
        watcher.watch(tmp_path, database_files(tmp_path / "messages.db"), waker)
        woke: list[str] = []
        loop = threading.Thread(target=lambda: woke.append(waker.wait(600).reason))
        loop.start()
        task = Path(f"/proc/self/task/{loop.native_id}")
        wait_until(lambda: in_poll(task), what="the wait to block in poll()")
        waker.stop()
        loop.join(DEADLINE)
        assert woke == [STOP]
    finally:
        watcher.close()


def test_only_the_database_files_ring(tmp_path: Path, watcher: Watcher) -> None:
    waker = Waker()
    db = tmp_path / "messages.db"
    watcher.watch(tmp_path, database_files(db), waker)
    for name in ("messages.db-shm", "logger.log", "messages-2026-11-29.json", "x.db-wal"):
        (tmp_path / name).write_text("not the database")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "messages.db-wal").write_text("a subdirectory: not watched")
    Path(f"{db}-wal").write_bytes(b"frame")
    wake = waker.wait(DEADLINE)
    assert (wake.reason, wake.names) == (CHANGE, ("messages.db-wal",))


def test_rename_delete_and_a_directory_that_comes_later(tmp_path: Path, watcher: Watcher) -> None:
    waker = Waker()
    later = tmp_path / "later"
    db = later / "messages.db"
    watcher.watch(later, database_files(db), waker)
    later.mkdir()  # watched once it is there (retried), and that alone wakes
    assert next_change(waker) == (".",)
    (later / "new.db").write_bytes(b"x")
    (later / "new.db").rename(db)  # a database put in place by rename
    assert next_change(waker) == ("messages.db",)
    db.unlink()
    assert next_change(waker) == ("messages.db",)
    later.rmdir()  # the directory itself: watched again when it is back
    assert next_change(waker) == (".",)
    later.mkdir()
    assert next_change(waker) == (".",)
    db.write_bytes(b"y")
    assert next_change(waker) == ("messages.db",)


def test_one_watcher_many_directories(tmp_path: Path, watcher: Watcher) -> None:
    rooms = {name: Waker() for name in ("a", "b", "c")}
    for name, waker in rooms.items():
        (tmp_path / name).mkdir()
        watcher.watch(tmp_path / name, database_files(tmp_path / name / "messages.db"), waker)
    (tmp_path / "b" / "messages.db-wal").write_bytes(b"frame")
    assert next_change(rooms["b"]) == ("messages.db-wal",)
    assert rooms["a"].wait(0).reason == TIMEOUT
    assert rooms["c"].wait(0).reason == TIMEOUT
    watcher.unwatch(rooms["b"])  # room b is gone: it rings no more
    (tmp_path / "b" / "messages.db-wal").write_bytes(b"frame 2")
    (tmp_path / "c" / "messages.db-wal").write_bytes(b"frame")
    assert next_change(rooms["c"]) == ("messages.db-wal",)  # after b's event, if any
    reasons = []  # b's rechecks from its last change may still come; no change
    while (reason := rooms["b"].wait(0.3).reason) != TIMEOUT:
        reasons.append(reason)
    assert CHANGE not in reasons


def test_a_database_reached_through_a_symlink_is_watched_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "messages.db"
    link.symlink_to(tmp_path / "real" / "messages.db")  # SQLite writes the -wal there
    waker = Waker()
    with watching_database(link, waker, enabled=True, poll=1.0):
        (tmp_path / "real" / "messages.db-wal").write_bytes(b"frame")
        assert next_change(waker) == ("messages.db-wal",)


def test_one_waker_for_many_directories_tells_them_apart(tmp_path: Path, watcher: Watcher) -> None:
    shared = Waker()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        db = tmp_path / name / "messages.db"
        watcher.watch(db.parent, database_files(db), shared, prefix=f"{name}/")
    (tmp_path / "b" / "messages.db-wal").write_bytes(b"frame")
    (tmp_path / "a" / "messages.db").write_bytes(b"page")
    names: set[str] = set()
    while names != {"b/messages.db-wal", "a/messages.db"}:
        names |= set(next_change(shared))
        assert names <= {"b/messages.db-wal", "a/messages.db"}, names


def test_the_test_hook_makes_it_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEAD_DROP_TEST_WATCHER", "fail")
    with pytest.raises(WatcherUnavailable):
        Watcher()


# -- the real logger -------------------------------------------------------------------


def wakes(stderr: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2) or "") for m in WAKE.finditer(stderr)]


@pytest.mark.parametrize("layout", ["beside", "same dir"])
def test_own_writes_do_not_wake_it(tmp_path: Path, server_db: Path, layout: str) -> None:
    # "beside": the log dir inside the database's directory and the logger's own log
    # (stderr, one debug line a wake-up) beside the database, as the daemon's is; a
    # wake-up caused by that line would write the next one, without end.
    # "same dir": its day files, state, lock and symlink beside the database.
    log_dir = tmp_path / "logs" if layout == "beside" else tmp_path
    proc = LoggerProcess(server_db, log_dir, "--poll-interval", "1", "--log-level", "debug")
    proc.start()
    try:
        proc.wait_ready()
        sent: list[int] = []
        for i in range(3):  # three batches, each writing files beside the database
            sent += serverdb.send_many(server_db, 1, prefix=f"m{i}")
            wait_until(lambda s=sent: logged_ids(log_dir) == s, what="the send logged")
        before = len(wakes(proc.stderr()))
        idle_from = time.monotonic()
        time.sleep(4)  # idle: only the timer should wake it, once a second
        idle = wakes(proc.stderr())[before:]
        idle_for = time.monotonic() - idle_from  # (4 s, or more on a loaded machine)
    finally:
        assert proc.stop() == 0
    changed = {name for reason, names in wakes(proc.stderr()) for name in names.split(", ")}
    assert changed - {""} <= DB_FILES, proc.stderr()
    # 4-5 timer wake-ups (one a second of the idle time, which a loaded machine can
    # stretch past the 4 s asked); a late event of the sends (the writer's checkpoint as
    # it closes) may wake it once more, with its rechecks.
    assert sum(reason == TIMEOUT for reason, _ in idle) <= math.ceil(idle_for) + 1, (idle_for, idle)
    assert sum(reason == CHANGE for reason, _ in idle) <= 2, idle
    assert any(reason == CHANGE for reason, _ in wakes(proc.stderr()))  # it did watch


def test_a_change_wakes_it_long_before_the_poll_interval(
    server_db: Path, log_dir: Path, logger: Logger
) -> None:
    proc = logger("--poll-interval", NEVER, "--log-level", "debug").start()
    proc.wait_ready()
    ids = serverdb.send_many(server_db, 3)
    wait_until(lambda: logged_ids(log_dir) == ids, what="the sends logged on change")
    assert proc.stop() == 0  # SIGTERM ends the 600 s wait at once
    reasons = {reason for reason, _ in wakes(proc.stderr())}
    assert TIMEOUT not in reasons and CHANGE in reasons
    assert "polling only" not in proc.stderr()


def test_one_database_is_followed_in_one_thread_woken_by_the_events(
    server_db: Path, log_dir: Path, logger: Logger
) -> None:
    """No watcher thread: the loop's own wait reads the events (and SIGTERM, arriving
    while it is blocked in poll(), ends that wait through the stop pipe)."""
    proc = logger("--poll-interval", NEVER, "--log-level", "debug").start()
    proc.wait_ready()
    tasks = Path(f"/proc/{proc.pid}/task")
    sent: list[int] = []
    for i in range(3):
        sent += serverdb.send_many(server_db, 2, prefix=f"m{i}")
        wait_until(lambda s=sent: logged_ids(log_dir) == s, what="the sends logged on change")
        assert [  # the main thread alone (beside the index's, which follows nothing)
            t.name for t in tasks.iterdir() if (t / "comm").read_text().strip() != INDEXER
        ] == [str(proc.pid)]
    wait_until(lambda: in_poll(tasks / str(proc.pid)), what="the loop to wait in poll()")
    assert proc.stop() == 0
    reasons = [reason for reason, _ in wakes(proc.stderr())]
    assert reasons.count(CHANGE) >= 3 and TIMEOUT not in reasons, proc.stderr()
    assert reasons[-1] == STOP


def test_a_database_created_later_is_noticed_through_its_events(
    tmp_path: Path, log_dir: Path, logger: Logger
) -> None:
    db = tmp_path / "fresh" / "messages.db"  # its directory is there, the file not yet
    db.parent.mkdir()
    proc = logger("--poll-interval", NEVER, "--log-level", "debug", db=db).start()
    wait_until(lambda: "does not exist" in proc.stderr(), what="the waiting notice")
    serverdb.create(db)
    ids = serverdb.send_many(db, 2)
    wait_until(lambda: logged_ids(log_dir) == ids, what="the new database logged")
    assert proc.stop() == 0
    assert any(r == CHANGE and "messages.db" in n for r, n in wakes(proc.stderr()))


@pytest.mark.parametrize("hook", ["fail", "deaf"])
def test_without_notifications_every_message_is_logged_at_the_poll_interval(
    tmp_path: Path, server_db: Path, log_dir: Path, logger: Logger, hook: str
) -> None:
    quiet = tmp_path / "quiet"  # "deaf": watched, but nothing ever happens there
    quiet.mkdir()
    env = {"DEAD_DROP_TEST_WATCHER": "fail" if hook == "fail" else f"deaf:{quiet}"}
    proc = logger("--poll-interval", "0.2", "--log-level", "debug", env=env).start()
    proc.wait_ready()
    sent: list[int] = []
    for i in range(4):
        sent += serverdb.send_many(server_db, 2, prefix=f"batch{i}")
        wait_until(lambda s=sent: logged_ids(log_dir) == s, what="the sends logged by the timer")
    assert proc.stop() == 0
    err = proc.stderr()
    assert {reason for reason, _ in wakes(err)} <= {TIMEOUT, STOP}, err
    assert err.count("polling only") == 1, err
    if hook == "fail":
        assert "INFO: no change notifications (DEAD_DROP_TEST_WATCHER=fail" in err
    else:
        assert f"INFO: no change notifications arrive for {server_db}" in err


def test_the_daemon_watches_after_detaching(home_env: dict[str, str], server_db: Path) -> None:
    # python-daemon closes every descriptor at start: a watcher made before would be dead.
    log_dir = server_db.parent / "logs"
    pid_file = server_db.parent / "logger.pid"
    args = ["--db", str(server_db), "--log-dir", str(log_dir), "--pid-file", str(pid_file)]
    daemon_log = Path(home_env["HOME"]) / ".dead-drop" / "logger.log"
    started = run_command("start", *args, "--poll-interval", NEVER, env=home_env)
    assert started.returncode == 0, started.stderr
    try:
        wait_until(lambda: "INFO: following " in daemon_log.read_text(), what="following")
        ids = serverdb.send_many(server_db, 2)
        wait_until(lambda: logged_ids(log_dir) == ids, what="the daemon to log on change")
    finally:
        stopped = run_command("stop", "--pid-file", str(pid_file), env=home_env)
    assert stopped.returncode == 0, stopped.stderr
    assert "polling only" not in daemon_log.read_text()


def test_restart_keeps_no_watch(home_env: dict[str, str], server_db: Path) -> None:
    log_dir = server_db.parent / "logs"
    pid_file = server_db.parent / "logger.pid"
    where = ["--pid-file", str(pid_file)]
    args = ["--db", str(server_db), "--log-dir", str(log_dir), *where]
    try:
        assert run_command("start", *args, "--no-watch", env=home_env).returncode == 0
        again = run_command("restart", *where, env=home_env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("dead-drop-logger keeps the running daemon's"), again
        assert " --no-watch" in again.stdout.splitlines()[0]
    finally:
        assert run_command("stop", *where, env=home_env).returncode == 0
