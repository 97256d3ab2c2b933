"""start / status / stop / restart as a user runs them: real daemons in a temporary HOME."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import (
    DEADLINE,
    LoggerProcess,
    logged_ids,
    logger_command,
    run_command,
    wait_until,
)
from procs import Reaper, process_alive

from dead_drop_logger.control import daemon, pidfile, status
from dead_drop_logger.control.pidfile import AlreadyRunning, Liveness, PidFile

FAST = ("--poll-interval", "0.05")


class Daemons:
    """Drives the commands for one HOME and kills any daemon a failing test leaves."""

    def __init__(self, env: dict[str, str], db: Path, log_dir: Path) -> None:
        self.env = env
        self.home = Path(env["HOME"])
        self.db = db
        self.log_dir = log_dir
        self.pids = Reaper()  # every daemon a start reported, killed at the end if left

    @property
    def pid_file(self) -> Path:
        return self.home / ".dead-drop" / "logger.pid"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_command(*args, env=self.env)

    def start(self, command: str = "start") -> subprocess.CompletedProcess[str]:
        done = self.run(command, "--db", str(self.db), "--log-dir", str(self.log_dir), *FAST)
        for pid in re.findall(r"started \(pid (\d+)\)", done.stdout):
            self.pids.add(int(pid))
        return done

    def wait_following(self) -> None:
        """Wait until the first daemon's log says it follows. On a first start it takes
        its position (the database's last id) just before that line, after `start` has
        returned: a message sent in between is history, which a first start does not log."""
        log = self.home / ".dead-drop" / "logger.log"
        wait_until(
            lambda: log.exists() and "following " in log.read_text(),
            what="the daemon to say it follows",
        )

    def status(self) -> tuple[int, dict[str, Any]]:
        done = self.run("status", "--json")
        return done.returncode, json.loads(done.stdout)


def started_pid(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stderr
    match = re.search(r"started \(pid (\d+)\)", done.stdout)
    assert match, done.stdout
    return int(match.group(1))


@pytest.fixture
def daemons(home_env: dict[str, str], server_db: Path, log_dir: Path) -> Iterator[Daemons]:
    d = Daemons(home_env, server_db, log_dir)
    yield d
    d.run("stop", "--timeout", "10")
    d.pids.kill_all()  # only those still the processes started (a pid may be reused)


def test_start_status_refuse_restart_stop(daemons: Daemons) -> None:
    pid = started_pid(daemons.start())
    assert daemons.pid_file.read_text().strip() == str(pid)
    assert process_alive(pid)

    code, info = daemons.status()
    assert code == 0
    assert info["status"] == "running" and info["pid"] == pid
    assert info["database"] == str(daemons.db)
    assert info["log_dir"] == str(daemons.log_dir)
    text = daemons.run("status")
    assert text.returncode == 0 and f"running (pid {pid})" in text.stdout

    # The daemon really logs, and status reports how far it got.
    ids = serverdb.send_many(daemons.db, 10)
    wait_until(lambda: logged_ids(daemons.log_dir) == ids, what="the daemon to log")
    wait_until(
        lambda: (
            daemons.status()[1]["lag"] == 0 and daemons.status()[1]["last_id_logged"] == ids[-1]
        ),
        what="status to report the last id",
    )
    assert daemons.status()[1]["today_file"].startswith(str(daemons.log_dir))

    second = daemons.start()
    assert second.returncode == 1
    assert f"already running (pid {pid})" in second.stderr
    assert "Traceback" not in second.stderr
    assert daemons.status()[1]["pid"] == pid

    new_pid = started_pid(daemons.start("restart"))
    assert new_pid != pid
    wait_until(lambda: not process_alive(pid), what="the old daemon to exit")
    assert daemons.status()[1]["pid"] == new_pid
    more = serverdb.send_many(daemons.db, 5, prefix="after restart")
    wait_until(lambda: logged_ids(daemons.log_dir) == ids + more, what="the new daemon to log")

    stopped = daemons.run("stop")
    assert stopped.returncode == 0 and f"stopped (pid {new_pid})" in stopped.stdout
    wait_until(lambda: not process_alive(new_pid), what="the stopped daemon to be gone")
    assert not daemons.pid_file.exists()
    assert daemons.status() == (3, {**daemons.status()[1], "status": "stopped"})
    assert daemons.run("status").returncode == 3
    again = daemons.run("stop")
    assert again.returncode == 0 and "not running" in again.stdout

    own_log = daemons.home / ".dead-drop" / "logger.log"
    assert own_log.stat().st_mode & 0o777 == 0o600
    assert f"dead-drop-logger[{pid}] INFO: daemon started" in own_log.read_text()
    assert logged_ids(daemons.log_dir) == ids + more


def test_restart_keeps_the_running_daemons_options_but_those_given(
    daemons: Daemons, tmp_path: Path
) -> None:
    """A plain restart used to start over in ~/.dead-drop/logs at the default poll
    interval: a first start in another log directory."""
    rlogs = tmp_path / "rlogs"
    first = daemons.run(
        "start", "--db", str(daemons.db), "--log-dir", str(rlogs), "--poll-interval", "0.5",
        "--retention-days", "7", "--log-level", "debug",
    )  # fmt: skip
    pid = started_pid(first)
    daemons.pids.add(pid)

    plain = daemons.run("restart")
    new_pid = started_pid(plain)
    daemons.pids.add(new_pid)
    own_log = daemons.home / ".dead-drop" / "logger.log"
    assert plain.stdout == (
        f"dead-drop-logger keeps the running daemon's --db {daemons.db} --log-dir {rlogs}"
        " --poll-interval 0.5 --retention-days 7 --log-level debug\n"
        f"dead-drop-logger stopped (pid {pid})\n"
        f"dead-drop-logger started (pid {new_pid}); its own log: {own_log}\n"
    )
    code, info = daemons.status()
    assert (code, info["pid"], info["log_dir"]) == (0, new_pid, str(rlogs))
    options = json.loads(pidfile.info_path(daemons.pid_file).read_text())["options"]
    assert (options["poll_interval"], options["retention_days"]) == (0.5, 7)
    ids = serverdb.send_many(daemons.db, 3)
    wait_until(lambda: logged_ids(rlogs) == ids, what="the restarted daemon to log")
    assert not (daemons.home / ".dead-drop" / "logs").exists()

    # An option given changes that option only.
    faster = daemons.run("restart", "--poll-interval", "0.05")
    newest = started_pid(faster)
    daemons.pids.add(newest)
    assert faster.stdout.splitlines()[0] == (
        f"dead-drop-logger keeps the running daemon's --db {daemons.db} --log-dir {rlogs}"
        " --retention-days 7 --log-level debug"
    )
    options = json.loads(pidfile.info_path(daemons.pid_file).read_text())["options"]
    assert options == {
        "db": [str(daemons.db)],  # --db is repeatable (rooms): a list of its values
        "rooms_dir": None,
        "log_dir": str(rlogs),
        "poll_interval": 0.05,
        "import_historical": False,
        "utc": False,
        "retention_days": 7,
        "max_bytes": None,
        "keep_files": None,
        "compress_after": None,
        "no_watch": False,
        "log_level": "debug",
        "encrypt_to": [],  # (encryption at rest: recorded, so a restart keeps it)
        "seal_interval": 60.0,
        "encrypt_content_to_agents": False,  # (agent-specific keys: recorded alike)
        "agents_keys": [],
        "escrow_to": [],
    }
    more = serverdb.send_many(daemons.db, 2, prefix="after restart")
    wait_until(lambda: logged_ids(rlogs) == ids + more, what="the third daemon to log")

    # An option set through its environment variable counts as given too.
    by_env = run_command("restart", env={**daemons.env, "DEAD_DROP_RETENTION_DAYS": "9"})
    daemons.pids.add(started_pid(by_env))
    options = json.loads(pidfile.info_path(daemons.pid_file).read_text())["options"]
    assert (options["retention_days"], options["poll_interval"]) == (9, 0.05)
    assert options["log_dir"] == str(rlogs)


def test_restart_of_a_daemon_from_before_options_were_recorded(tmp_path: Path) -> None:
    """An upgrade restarts a daemon whose sidecar names only what it follows."""
    path = tmp_path / "logger.pid"
    old = {"database": "/data/messages.db", "log_dir": "/data/logs", "utc": True}
    with PidFile(path, old):
        assert daemon.running_options(path) == {
            "db": ("/data/messages.db",),  # as the repeatable --db gives its value
            "log_dir": "/data/logs",
            "utc": True,
        }
    assert daemon.running_options(path) == {}  # nothing runs: nothing to keep


def test_stale_pid_file_after_a_crash(daemons: Daemons) -> None:
    pid = started_pid(daemons.start())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not process_alive(pid), what="the daemon to die")
    assert daemons.pid_file.exists()

    code, info = daemons.status()
    assert (code, info["status"], info["pid"]) == (1, "stale", pid)
    assert "left behind" in daemons.run("status").stdout

    new_pid = started_pid(daemons.start())
    assert daemons.status()[:1] == (0,) and daemons.status()[1]["pid"] == new_pid


def test_stop_never_signals_an_unrelated_process_named_in_the_pid_file(
    daemons: Daemons,
) -> None:
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        daemons.pid_file.parent.mkdir(parents=True)
        daemons.pid_file.write_text(f"{bystander.pid}\n")

        code, info = daemons.status()
        assert (code, info["status"], info["pid"]) == (1, "stale", bystander.pid)

        stopped = daemons.run("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "stale" in stopped.stdout
        assert bystander.poll() is None, "stop killed a process it does not own"
        assert not daemons.pid_file.exists()

        pid = started_pid(daemons.start())
        assert pid != bystander.pid
        assert daemons.run("stop").returncode == 0
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_start_fails_in_the_terminal_when_the_daemon_cannot_run(daemons: Daemons) -> None:
    blocker = daemons.log_dir.parent / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    daemons.log_dir = blocker / "logs"
    done = daemons.start()
    assert done.returncode == 1
    assert "dead-drop-logger: error:" in done.stderr and str(daemons.log_dir) in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert daemons.status()[0] == 3  # the failed daemon released and removed its PID file


def test_stop_gives_up_after_its_timeout_and_says_so(daemons: Daemons) -> None:
    pid = started_pid(daemons.start())
    os.kill(pid, signal.SIGSTOP)  # a daemon that cannot act on SIGTERM
    try:
        stuck = daemons.run("stop", "--timeout", "1")
        assert stuck.returncode == 1
        assert f"pid {pid} did not exit within 1s" in stuck.stderr
        assert process_alive(pid) and daemons.status()[0] == 0
    finally:
        os.kill(pid, signal.SIGCONT)
    # The SIGTERM is still pending: once resumed it finishes cleanly.
    wait_until(lambda: not process_alive(pid), what="the resumed daemon to exit")
    assert daemons.status()[0] == 3


class FixedClock:
    def __init__(self, now: dt.datetime) -> None:
        self._now = now

    def now(self) -> dt.datetime:
        return self._now


def test_pid_file_lock_decides_and_status_measures_uptime(tmp_path: Path) -> None:
    path = tmp_path / "run" / "logger.pid"
    assert pidfile.read(path).liveness is Liveness.ABSENT
    info = {"database": str(tmp_path / "m.db"), "log_dir": str(tmp_path / "logs")}
    serverdb.create(tmp_path / "m.db")  # (one that cannot be read is a problem: exit 150)
    with PidFile(path, info):
        held = pidfile.read(path)
        assert (held.liveness, held.pid) == (Liveness.RUNNING, os.getpid())
        with pytest.raises(AlreadyRunning, match=rf"already running \(pid {os.getpid()}\)"):
            PidFile(path).acquire(patience=0)
        started = held.info["started"]
        later = dt.datetime.fromtimestamp(started + 3725, dt.UTC)
        report = status.gather(path, FixedClock(later))
        assert (report.exit_code, report.uptime_seconds) == (0, 3725)
        assert "uptime:         1h 02m" in report.to_text()
        assert report.database == info["database"] and report.lag is None
    assert pidfile.read(path).liveness is Liveness.ABSENT
    assert status.gather(path).exit_code == 3


def test_status_caught_mid_start_waits_for_the_pid_and_its_sidecar(tmp_path: Path) -> None:
    """A holder caught after its lock but before it has written both its pid and its
    sidecar is reported once both are there, not with a crashed holder's leftovers."""
    path = tmp_path / "logger.pid"
    path.write_text("4242\n")  # a crashed holder's pid and sidecar
    pidfile.info_path(path).write_text(json.dumps({"pid": 4242, "database": "old.db"}))
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the new holder, caught between its steps
    os.ftruncate(fd, 0)

    def finish() -> None:  # the pid first, the sidecar a moment later
        os.write(fd, b"777\n")
        time.sleep(0.2)
        pidfile.info_path(path).write_text(json.dumps({"pid": 777, "database": "new.db"}))

    timer = threading.Timer(0.2, finish)
    timer.start()
    try:
        held = pidfile.read(path, settle=60)
    finally:
        timer.join()
        os.close(fd)
    assert (held.liveness, held.pid, held.info.get("database")) == (
        Liveness.RUNNING,
        777,
        "new.db",
    )


def test_concurrent_starts_leave_exactly_one_daemon(daemons: Daemons) -> None:
    command = [*logger_command(), "start", "--db", str(daemons.db)]
    command += ["--log-dir", str(daemons.log_dir), *FAST]
    racers = [
        subprocess.Popen(
            command, env=daemons.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=DEADLINE), *p.communicate()) for p in racers]
    winners = [int(m) for _, out, _ in results for m in re.findall(r"pid (\d+)\)", out)]
    for pid in winners:
        daemons.pids.add(pid)
    assert len(winners) == 1, results
    losers = [err for code, _, err in results if code == 1]
    assert len(losers) == 3, results
    assert all(f"already running (pid {winners[0]})" in err for err in losers)
    assert daemons.status()[1]["pid"] == winners[0]


def test_a_service_run_holding_the_pid_file_is_seen_by_status_start_and_stop(
    daemons: Daemons,
) -> None:
    """What the systemd unit and launchd plist run: `run --pid-file ~/.dead-drop/logger.pid`."""
    service = subprocess.Popen(
        [
            *logger_command(),
            "run",
            "--db",
            str(daemons.db),
            "--log-dir",
            str(daemons.log_dir),
            "--pid-file",
            str(daemons.pid_file),
            *FAST,
        ],
        env=daemons.env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemons.pids.add(service.pid)
    _code, report = wait_until(
        lambda: (s := daemons.status())[0] == 0 and s,
        what="status to see the service",
    )
    assert report["pid"] == service.pid
    assert report["database"] == str(daemons.db)
    refused = daemons.start()
    assert refused.returncode == 1
    assert f"already running (pid {service.pid})" in refused.stderr
    second_run = daemons.run("run", "--db", str(daemons.db), "--pid-file", str(daemons.pid_file))
    assert second_run.returncode == 1 and "already running" in second_run.stderr
    assert daemons.run("stop").returncode == 0
    assert service.wait(timeout=DEADLINE) == 0
    assert daemons.status()[0] == 3


def test_status_names_the_part_being_written(tmp_path: Path) -> None:
    """With --max-bytes, today's file is its highest part, not part 0."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    for name in ("messages-2026-03-10.json", "messages-2026-03-10.1.json"):
        (log_dir / name).write_bytes(b'{"id":1}\n')
    (log_dir / "messages-2026-03-10.2.json").write_bytes(b'{"id":2}\n{"id":3}\n')
    (log_dir / "messages-2026-03-09.3.json").write_bytes(b'{"id":0}\n')  # another day
    path = tmp_path / "logger.pid"
    info = {"database": str(tmp_path / "m.db"), "log_dir": str(log_dir)}
    noon = dt.datetime(2026, 3, 10, 12, 0).astimezone()
    with PidFile(path, info):
        report = status.gather(path, FixedClock(noon))
    assert report.today_file == str(log_dir / "messages-2026-03-10.2.json")
    assert report.today_file_bytes == 18


def test_status_names_todays_newest_segment_when_encrypted(tmp_path: Path) -> None:
    """Encrypted: today's newest sealed segment, not a plain file that is never made."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / ".dead-drop-logger.encrypted").write_bytes(b"")
    path = tmp_path / "logger.pid"
    info = {"database": str(tmp_path / "m.db"), "log_dir": str(log_dir)}
    noon = dt.datetime(2026, 3, 10, 12, 0).astimezone()
    with PidFile(path, info):
        report = status.gather(path, FixedClock(noon))
    assert report.today_file == str(log_dir / "messages-2026-03-10.*.json.age")
    assert report.today_file_bytes is None  # none sealed yet today
    for name in ("messages-2026-03-10.000001.json.age", "messages-2026-03-10.000002.json.age"):
        (log_dir / name).write_bytes(b"age-encryption.org/v1\n" + bytes(len(name)))
    (log_dir / "messages-2026-03-11.000001.json.age").write_bytes(b"x")  # another day
    with PidFile(path, info):
        report = status.gather(path, FixedClock(noon))
    assert report.today_file == str(log_dir / "messages-2026-03-10.000002.json.age")
    assert report.today_file_bytes == len("age-encryption.org/v1\n" + name)


def test_restart_that_cannot_start_is_refused_and_the_daemon_keeps_running(
    daemons: Daemons, tmp_path: Path
) -> None:
    pid = started_pid(daemons.start())
    daemons.pids.add(pid)
    done = daemons.run("restart", "--db", str(tmp_path))  # a directory: cannot start
    assert (done.returncode, done.stdout) == (2, "")
    assert f"{tmp_path} is a directory, not a database file" in done.stderr
    assert "stopped" not in done.stderr
    code, info = daemons.status()
    assert (code, info["pid"]) == (0, pid)


def test_restart_with_rooms_replaces_a_recorded_bare_db_and_back(
    daemons: Daemons, tmp_path: Path
) -> None:
    """Both ways used to stop the daemon, then fail with a usage error: nothing running."""
    rooms = tmp_path / "rooms"
    room = serverdb.room_db(rooms, "ops")
    room.parent.mkdir(parents=True)
    serverdb.create(room)
    daemons.pids.add(started_pid(daemons.start()))
    to_rooms = daemons.run("restart", "--rooms-dir", str(rooms))
    daemons.pids.add(started_pid(to_rooms))
    assert to_rooms.stdout.startswith(
        f"dead-drop-logger keeps the running daemon's --log-dir {daemons.log_dir}"
        " --poll-interval 0.05\n"
    )
    code, info = daemons.status()
    assert (code, info["rooms_dir"]) == (0, str(rooms))
    ids = serverdb.send_many(room, 2, prefix="room")
    wait_until(lambda: logged_ids(daemons.log_dir / "ops") == ids, what="the room logged")
    back = daemons.run("restart", "--db", str(daemons.db))
    daemons.pids.add(started_pid(back))
    code, info = daemons.status()
    assert (code, info["database"], info.get("rooms_dir")) == (0, str(daemons.db), None)


def test_settings_from_the_file_are_not_frozen_into_a_restart(daemons: Daemons) -> None:
    """Removed from config.toml, poll_interval and retention_days used to stick."""
    settings = daemons.home / ".config" / "dead-drop-logger" / "config.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text("poll_interval = 0.3\nretention_days = 7\n")
    daemons.pids.add(started_pid(daemons.start()))
    options = json.loads(pidfile.info_path(daemons.pid_file).read_text())["options"]
    assert (options["poll_interval"], options["retention_days"]) == (0.05, 7)
    settings.write_text("")
    again = daemons.run("restart")
    daemons.pids.add(started_pid(again))
    assert again.stdout.splitlines()[0] == (
        f"dead-drop-logger keeps the running daemon's --db {daemons.db}"
        f" --log-dir {daemons.log_dir} --poll-interval 0.05"
    )
    options = json.loads(pidfile.info_path(daemons.pid_file).read_text())["options"]
    assert (options["poll_interval"], options["retention_days"]) == (0.05, 30)


@pytest.mark.parametrize("notes", ["remember the milk\n", "4242 is the answer\n", "12\nmore\n"])
def test_a_file_that_is_not_a_pid_file_is_never_removed_or_overwritten(
    daemons: Daemons, notes: str
) -> None:
    """Issue 17: `stop --pid-file NOTES` deleted the file ("removed the stale PID file")
    and `start --pid-file NOTES` overwrote it; `run --pid-file` too."""
    path = daemons.home / "NOTES"
    path.write_text(notes)
    first = notes.splitlines()[0]
    refused = f"{path} is not a PID file (it holds {first!r}); left as it is"

    stopped = daemons.run("stop", "--pid-file", str(path))
    assert stopped.returncode == 1 and stopped.stdout == ""
    assert stopped.stderr == (
        f"dead-drop-logger: error: not running; {refused}: give another --pid-file\n"
    )
    assert path.read_text() == notes

    args = ("--db", str(daemons.db), "--log-dir", str(daemons.log_dir), *FAST)
    for command in ("start", "run"):
        done = daemons.run(command, *args, "--pid-file", str(path))
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1 and refused in done.stderr, done.stderr
        assert path.read_text() == notes
        assert not Path(f"{path}.json").exists()

    # A real PID file left by a crash is still removed, an empty one too.
    for stale in ("12345\n", ""):
        path.write_text(stale)
        stopped = daemons.run("stop", "--pid-file", str(path))
        assert stopped.returncode == 0 and "removed the stale PID file" in stopped.stdout
        assert not path.exists()


def _other_db(tmp_path: Path, name: str, sends: int = 0) -> Path:
    path = tmp_path / name / "messages.db"
    path.parent.mkdir()
    serverdb.create(path)
    if sends:
        serverdb.send_many(path, sends, prefix=name)
    return path


def test_restart_checks_before_it_stops_and_stops_nothing_it_cannot_start(
    daemons: Daemons, tmp_path: Path
) -> None:
    """Issue 17: `restart --db /no/such/dir/x.db` printed "stopped", then failed: nothing
    ran afterwards. So did a --log-dir under a file, and a plain restart after `db =`
    was edited in config.toml to another database than the log directory's."""
    settings = daemons.home / ".config" / "dead-drop-logger" / "config.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text(f'db = "{daemons.db}"\nlog_dir = "{daemons.log_dir}"\n')
    done = daemons.run("start", *FAST)
    pid = started_pid(done)
    daemons.pids.add(pid)
    daemons.wait_following()
    ids = serverdb.send_many(daemons.db, 2)
    wait_until(lambda: logged_ids(daemons.log_dir) == ids, what="the daemon to log")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    other = _other_db(tmp_path, "other", 1)
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    refusals = {
        ("--db", str(missing)): (
            2,
            f"database {missing} cannot appear: directory {tmp_path / 'no'} does not exist"
            " (check --db)",
        ),
        ("--log-dir", str(blocker / "logs")): (
            1,
            f"cannot create log directory {blocker / 'logs'}: a parent is not a directory",
        ),
        ("--config", str(settings)): (
            1,
            f"log directory {daemons.log_dir} holds the messages of database {daemons.db},"
            f" not {other}; give {other} another --log-dir",
        ),
    }
    for args, (code, why) in refusals.items():
        if args[0] == "--config":
            settings.write_text(f'db = "{other}"\nlog_dir = "{daemons.log_dir}"\n')
        done = daemons.run("restart", *args)
        assert (done.returncode, done.stdout) == (code, ""), done.stderr
        assert done.stderr == f"dead-drop-logger: error: {why}\n"
        status_code, info = daemons.status()
        assert (status_code, info["pid"], info["database"]) == (0, pid, str(daemons.db))
    more = serverdb.send_many(daemons.db, 2, prefix="still logged")
    wait_until(lambda: logged_ids(daemons.log_dir) == ids + more, what="the daemon to log")


def test_a_restart_whose_daemon_fails_to_start_starts_the_old_one_again(
    daemons: Daemons, tmp_path: Path, logger
) -> None:
    """What only the start can tell: the new log directory holds no message yet, so it
    may be taken, but another logger works in it. The old daemon runs again, with its
    old options, and the exit code says the restart failed."""
    pid = started_pid(daemons.start())
    daemons.wait_following()
    ids = serverdb.send_many(daemons.db, 2)
    wait_until(lambda: logged_ids(daemons.log_dir) == ids, what="the daemon to log")
    busy_dir = tmp_path / "busy-logs"
    working = _other_db(tmp_path, "working")
    neighbour = LoggerProcess(working, busy_dir, "--poll-interval", "0.05")
    neighbour.start().wait_ready()
    try:
        new_db = _other_db(tmp_path, "new")
        done = daemons.run("restart", "--db", str(new_db), "--log-dir", str(busy_dir))
        restarted = re.search(r"old options \(pid (\d+)\)", done.stderr)
        assert restarted, done.stderr
        again = int(restarted.group(1))
        daemons.pids.add(again)
        assert done.returncode == 1
        assert done.stdout.splitlines() == [
            "dead-drop-logger keeps the running daemon's --poll-interval 0.05",
            f"dead-drop-logger stopped (pid {pid})",
        ]
        assert done.stderr == (
            f"dead-drop-logger: error: log directory {busy_dir} holds the messages of"
            f" database {working}, not {new_db}; give {new_db} another --log-dir;"
            f" started the old daemon again with its old options (pid {again})\n"
        )
        code, info = daemons.status()
        assert (code, info["pid"], info["database"]) == (0, again, str(daemons.db))
        options = json.loads(pidfile.info_path(daemons.pid_file).read_text())["options"]
        assert (info["log_dir"], options["poll_interval"]) == (str(daemons.log_dir), 0.05)
        more = serverdb.send_many(daemons.db, 2, prefix="after")
        wait_until(lambda: logged_ids(daemons.log_dir) == ids + more, what="the old one logs")
        # Its recorded options are the old ones too: a later plain restart keeps them.
        plain = daemons.run("restart")
        daemons.pids.add(started_pid(plain))
        assert daemons.status()[1]["database"] == str(daemons.db)
    finally:
        neighbour.stop()
