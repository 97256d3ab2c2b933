"""``start``, ``stop`` and ``restart``: the logger as a background daemon.

``start`` checks the PID file before detaching, so a second start fails in the
terminal instead of in a child nobody watches. It then forks; the child becomes the
daemon through python-daemon's ``DaemonContext`` (detaching explicitly), takes the PID
file's lock, sets up its log file, checks the log directory and reports "ok" or the
error back over a pipe. The command returns only after that report, so exit 0 means a
daemon is running and holds the PID file.

``stop`` signals only a pid whose PID file is locked (see :mod:`.pidfile`), then waits,
bounded, for the lock to be released (the daemon's last act) and for the process to go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import daemon as python_daemon

from .. import diagnostics
from ..config import Settings
from ..files import FILE_MODE, LogDirError, ensure_private_dir, make_private_dirs
from ..record.follow import TRANSIENT, Follower
from ..record.rooms import Rooms, runner
from ..record.sqlite_process import stop_memory_statistics
from . import pidfile
from .pidfile import AlreadyRunning, Liveness, PidFile, PidFileError

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
EXIT_GRACE = 2.0


class DaemonError(Exception):
    """Starting or stopping failed; the message is one line for the user."""


@dataclass(frozen=True)
class Stopped:
    """What ``stop`` did: the pid it stopped (None if none ran) and a sentence."""

    pid: int | None
    message: str


def start(
    settings: Settings,
    *,
    pid_path: Path,
    log_file: Path,
    log_level: str = "info",
    timeout: float = START_TIMEOUT,
    given: Collection[str] = (),
    ship: Any = None,
    notify_rules: Sequence[Any] = (),
) -> int:
    """Start a daemon and return its pid once it is confirmed running.

    ``given``: the options given on the command line or through the environment (what
    ``restart`` keeps; the rest comes from the settings file and defaults anew).
    Raises AlreadyRunning (before detaching) or DaemonError.
    """
    current = pidfile.read(pid_path)
    if current.liveness is Liveness.RUNNING:
        raise AlreadyRunning(current.pid)
    if current.liveness is Liveness.STALE:
        pidfile.check_replaceable(pid_path)  # a file of the user's: refused, in the terminal
    # The daemon works from "/", so every path it is given must be absolute.
    settings = replace(
        settings,
        db=settings.db.absolute(),
        log_dir=settings.log_dir.absolute(),
        rooms_dir=settings.rooms_dir.absolute() if settings.rooms_dir else None,
        rooms=tuple((name, db.absolute()) for name, db in settings.rooms),
    )
    pid_path, log_file = pid_path.absolute(), log_file.absolute()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child (tested end to end)
        os.close(read_end)
        code = 1
        try:
            code = _become_daemon(
                settings, pid_path, log_file, log_level, write_end, given, ship, notify_rules
            )
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        report = _read_report(read_end, timeout)
    finally:
        os.close(read_end)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)  # the first child exits as soon as it has forked
    if report is None:
        raise DaemonError(f"the daemon did not report within {timeout:g}s; see {log_file}")
    if report == "":
        raise DaemonError(f"the daemon exited while starting; see {log_file}")
    word, _, rest = report.partition(" ")
    if word != "ok":
        raise DaemonError(rest or report)
    pid = int(rest)
    running = pidfile.read(pid_path)
    if running.liveness is not Liveness.RUNNING or running.pid != pid:
        raise DaemonError(f"the daemon (pid {pid}) does not hold {pid_path}; see {log_file}")
    return pid


def held_pid_file(
    settings: Settings, pid_path: Path, log_level: str = "info", given: Collection[str] = ()
) -> PidFile:
    """The PID file a logger holds, with what ``status`` reports about it and the options
    it runs with, named as the command-line options are, and which of them were given
    (command line or environment): only those are ``restart``'s to keep, so that a
    setting edited in or removed from the settings file takes effect at a restart."""
    db, log_dir = str(settings.db.absolute()), str(settings.log_dir.absolute())
    running = {
        **asdict(settings),
        "db": [db],
        "log_dir": log_dir,
        "log_level": log_level,
        "rooms_dir": None,
    }
    del running["rooms"]
    info: dict[str, object] = {"database": db, "log_dir": log_dir, "utc": settings.utc}
    if settings.has_rooms:
        del info["database"]
        rooms = {name: str(path.absolute()) for name, path in settings.rooms}
        info["rooms_dir"] = str(settings.rooms_dir.absolute()) if settings.rooms_dir else None
        info["rooms"] = rooms
        running["rooms_dir"] = info["rooms_dir"]
        running["db"] = [f"{name}={path}" for name, path in rooms.items()]
    info["options"] = running
    info["given"] = sorted(name for name in given if name in running)
    return PidFile(pid_path, info)


def running_options(pid_path: Path) -> dict[str, Any]:
    """The options the daemon holding ``pid_path`` runs with, by option name; empty when
    none runs."""
    current = pidfile.read(pid_path)
    if current.liveness is not Liveness.RUNNING:
        return {}
    recorded = current.info.get("options")
    given = current.info.get("given")
    if isinstance(recorded, dict) and isinstance(given, list):
        found = {name: value for name, value in recorded.items() if name in given}
    elif isinstance(recorded, dict):  # from before the given ones were told apart: all
        found = dict(recorded)
    else:  # A daemon started by an older version (an upgrade restarts it): what it recorded.
        older = {"database": "db", "log_dir": "log_dir", "utc": "utc"}
        found = {name: current.info[key] for key, name in older.items() if key in current.info}
    # --db is repeatable (rooms): its value is a tuple, one path before rooms existed.
    if isinstance(found.get("db"), str):
        found["db"] = (found["db"],)
    elif isinstance(found.get("db"), list):
        found["db"] = tuple(str(v) for v in found["db"])
    return found


def recorded(pid_path: Path) -> tuple[dict[str, Any], list[str], str] | None:
    """Every option the daemon holding ``pid_path`` runs with (not only those given),
    which of them were given, and its log level: what starts it again as it was after a
    restart that could not start. None when none runs or it recorded no options."""
    current = pidfile.read(pid_path)
    options, given = current.info.get("options"), current.info.get("given")
    if current.liveness is not Liveness.RUNNING or not isinstance(options, dict):
        return None
    names = [str(name) for name in given] if isinstance(given, list) else list(options)
    return dict(options), names, str(options.get("log_level", "info"))


def _become_daemon(
    settings: Settings,
    pid_path: Path,
    log_file: Path,
    log_level: str,
    report: int,
    given: Collection[str],
    ship: Any = None,
    notify_rules: Sequence[Any] = (),
) -> int:  # pragma: no cover - runs in the daemon (tested end to end)
    """In the forked child: detach, lock, log, report, follow. Returns the exit code."""
    context = python_daemon.DaemonContext(
        detach_process=True,
        pidfile=held_pid_file(settings, pid_path, log_level, given),
        files_preserve=[report],
        working_directory="/",
        umask=0o077,
    )
    try:
        context.open()
    except (AlreadyRunning, PidFileError) as exc:  # AlreadyRunning: a start won the race
        _send(report, f"error {exc}")
        return 1
    except OSError as exc:
        _send(report, f"error cannot become a daemon: {exc.strerror}")
        return 1
    except Exception as exc:
        _send(report, f"error cannot become a daemon: {exc}")
        return 1
    try:
        follower = _prepare(settings, log_file, log_level)
    except (OSError, LogDirError) as exc:
        log.error("cannot start: %s", exc)
        context.close()  # the PID file first: once start has failed, status says stopped
        _send(report, f"error {exc}")
        return 1
    sent = False

    def ready() -> None:
        nonlocal sent
        if not sent:
            sent = True
            _send(report, f"ok {os.getpid()}")

    try:
        log.info("daemon started (pid %d)", os.getpid())
        follower.on_following = ready  # once its position is taken (see Follower's)
        return _serve(follower, settings.log_dir, ship, notify_rules)
    finally:
        if not sent:  # (stopped or failed before following: start says it exited)
            sent = True
            with contextlib.suppress(OSError):
                os.close(report)
        context.close()


def _prepare(
    settings: Settings, log_file: Path, log_level: str
) -> Follower | Rooms:  # pragma: no cover - runs in the daemon (tested end to end)
    stop_memory_statistics()  # alone after the fork, before any connection (see there)
    make_private_dirs(log_file.parent)
    diagnostics.configure(log_level, file=log_file)
    os.chmod(log_file, FILE_MODE)
    ensure_private_dir(settings.log_dir)
    follower = runner(settings)
    if isinstance(follower, Follower):
        # Another database's log directory is refused here, so that `start` says so in
        # the terminal; trouble reading the database now is the follower's to retry.
        with contextlib.suppress(*TRANSIENT):
            follower.pipeline.claim()
    follower.install_signal_handlers()
    return follower


def _serve(
    follower: Follower | Rooms, log_dir: Path, ship: Any = None, notify_rules: Sequence[Any] = ()
) -> int:  # pragma: no cover - runs in the daemon
    from .indexer import keeping_index

    running = None
    if ship is not None:  # [ship]: a thread per sink beside the follower
        from . import shipping

        running = shipping.start(ship, log_dir)
    notifier = None
    if notify_rules:  # [[notify]] rules: a thread per rule, reading the logs
        from ..notify.service import Notifier

        notifier = Notifier(notify_rules, log_dir)
        notifier.start()
    try:
        with keeping_index(log_dir):
            follower.run()
    except LogDirError as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("unexpected error; exiting")
        return 1
    finally:
        if notifier is not None:
            notifier.stop()
        if running is not None:
            running.stop()
    return 0


def _send(fd: int, message: str) -> None:  # pragma: no cover - runs in the daemon
    with contextlib.suppress(OSError):
        os.write(fd, (message.replace("\n", " ") + "\n").encode())
        os.close(fd)


def _read_report(fd: int, timeout: float) -> str | None:
    """The daemon's one-line report; "" when it exited without one, None on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")


def stop(
    pid_path: Path,
    *,
    timeout: float = STOP_TIMEOUT,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Stopped:
    """SIGTERM the daemon holding ``pid_path`` and wait for it to exit.

    Never signals a pid the lock does not vouch for. Raises DaemonError when the
    daemon is still running after ``timeout`` seconds.
    """
    current = pidfile.read(pid_path)
    if current.liveness is Liveness.ABSENT:
        return Stopped(None, "not running")
    if current.liveness is Liveness.STALE:
        try:
            pidfile.remove_stale(pid_path)
        except PidFileError as exc:
            raise DaemonError(f"not running; {exc}") from None
        named = f" (it named pid {current.pid}, left untouched)" if current.pid else ""
        return Stopped(None, f"not running; removed the stale PID file {pid_path}{named}")
    pid = current.pid
    if pid is None:
        raise DaemonError(f"{pid_path} is locked but names no pid; not signalling anything")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = monotonic() + timeout
    while pidfile.read(pid_path).liveness is Liveness.RUNNING:
        if monotonic() > deadline:
            raise DaemonError(
                f"pid {pid} did not exit within {timeout:g}s of SIGTERM and is still running"
            )
        sleep(0.05)
    pidfile.remove_stale(pid_path)  # normally already gone: the daemon removes it
    # The lock goes an instant before the process: give it that instant, so "stopped"
    # means gone. Only waited on, never signalled, so a reused pid costs at most this.
    gone_by = min(deadline, monotonic() + EXIT_GRACE)
    while _alive(pid) and monotonic() < gone_by:
        sleep(0.02)
    return Stopped(pid, f"stopped (pid {pid})")


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    if not os.path.exists("/proc/self/stat"):  # no procfs (macOS): ask the kernel
        try:
            os.kill(pid, 0)  # signal 0 only checks; nothing is sent
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
