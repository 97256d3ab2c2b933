"""Shared fixtures: server-like databases, the real logger process, and log readers.

Every test that needs a source database gets it from :mod:`serverdb` through the
``server_db`` fixture; every test that runs the logger uses :class:`LoggerProcess`.

A test (or module) marked ``both_ways`` runs twice: its ``logger`` fixture starts
loggers with change notifications (the default) and with ``--no-watch``.
"""

from __future__ import annotations

import datetime as dt
import glob
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import serverdb  # tests/ is on sys.path (pytest's rootdir-relative conftest import)

from dead_drop_logger.read.feed import Feed, FeedLine

# the fault suites' plain and sealed variants (see there)
pytest_plugins = ["encryptvariants"]

DEADLINE = 60.0  # generous: a loaded 2-core machine must never make a test flaky
WRITER = str(Path(__file__).parent / "serverdb.py")
FOREVER = 10**6  # start_writer's sends for a writer the test ends (stop_writer)


LIBFAKETIME = next(
    iter(
        sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
        + sorted(glob.glob("/usr/local/lib/faketime/libfaketime.so.1"))
    ),
    None,
)


def faked(start: str) -> dict[str, str]:
    """The environment that runs a process under libfaketime from ``start`` (UTC)."""
    assert LIBFAKETIME is not None
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME": f"@{start}",  # starts there, then advances in real time
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # waits and deadlines keep real durations
        "TZ": "UTC",
    }


def logger_command() -> list[str]:
    """The installed console script (the real thing a user runs)."""
    script = Path(sys.executable).parent / "dead-drop-logger"
    if script.exists():
        return [str(script)]
    found = shutil.which("dead-drop-logger")
    assert found, "dead-drop-logger is not installed: pip install -e '.[test]'"
    return [found]


def wait_until(
    predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


_AGE_KEY: list[tuple[Path, str]] = []
ENCRYPTED_SUITE = "DDL_TEST_ENCRYPTED"  # =1: every LoggerProcess seals its logs (age)


def age_identity() -> tuple[Path, str]:
    """The suite's age identity (made once, by Debian's ``age-keygen``) and its
    recipient: what encrypted test logs are sealed to and read with."""
    if not _AGE_KEY:
        assert shutil.which("age-keygen"), "age is not installed (apt-get install age)"
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="dd-age-key-"))
        import atexit

        atexit.register(shutil.rmtree, folder, True)  # (the suite's key: gone after it)
        key = folder / "identity.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
        ).stdout.strip()
        _AGE_KEY.append((key, recipient))
    return _AGE_KEY[0]


def age_decrypt(path: Path, identity: Path | None = None) -> bytes:
    """An age file decrypted by Debian's ``age -d`` (not the library under test)."""
    key = identity or age_identity()[0]
    done = subprocess.run(["age", "-d", "-i", str(key), str(path)], capture_output=True)
    assert done.returncode == 0, f"age -d {path}: {done.stderr.decode(errors='replace')}"
    return done.stdout


def encrypted_args() -> list[str]:
    """``run``'s options that seal the logs to the suite's identity, quickly (a test
    waiting on the position must not wait the default 60 s for a seal), with the
    identity the logger needs only to rebuild a lost state from its files."""
    key, recipient = age_identity()
    # the identity too: a lost state is rebuilt from the (encrypted) files
    return ["--encrypt-to", recipient, "--seal-interval", "0.2", "--identity", str(key)]


_AGENT_KEYS: dict[str, tuple[Path, str]] = {}
KEYED_AGENTS = ("juno", "vega", "atlas", "escrow")  # orion and the lead have no key


def agent_identity(name: str) -> tuple[Path, str]:
    """An age identity of the suite (made once each, by Debian's ``age-keygen``) for
    agent ``name`` (or the escrow), and its recipient: agent-specific keys' tests."""
    if name not in _AGENT_KEYS:
        import atexit
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix=f"dd-age-{name}-"))
        atexit.register(shutil.rmtree, folder, True)
        key = folder / "identity.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
        ).stdout.strip()
        _AGENT_KEYS[name] = (key, recipient)
    return _AGENT_KEYS[name]


def agent_key_args() -> list[str]:
    """``run``'s options sealing each content to its agents' keys (juno, vega, atlas;
    orion has none) and the escrow's (docs/encryption.md#agent-specific-keys)."""
    args = ["--encrypt-content-to-agents", "--escrow-to", agent_identity("escrow")[1]]
    for name in KEYED_AGENTS[:-1]:
        args += ["--agent-key", f"{name}={agent_identity(name)[1]}"]
    return args


def day_files(log_dir: Path, pattern: str = "messages-*.json") -> list[Path]:
    """The log files matching ``pattern``, sorted, without the ``messages-current.json``
    symlink (reading through it would count today's lines twice)."""
    return sorted(p for p in log_dir.glob(pattern) if not p.is_symlink())


_DECRYPTED: dict[tuple[str, int, int, int, int, int], bytes] = {}


def _decrypted(path: Path) -> bytes:
    """A segment decrypted by Debian's age, once per file: a segment is written once,
    so the same file (path, inode, size, times) has the same plaintext (polls of a
    directory of many segments would otherwise run ``age -d`` on each, every time)."""
    st = path.stat()
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _DECRYPTED:
        if len(_DECRYPTED) > 10_000:
            _DECRYPTED.clear()
        _DECRYPTED[key] = age_decrypt(path)
    return _DECRYPTED[key]


def _whole_lines(path: Path, grace: float = 10.0) -> bytes | None:
    """The file's bytes (None if it is gone). A read can catch a running logger's append
    half done, so a file ending in a partial line is read again, for ``grace`` seconds,
    before the partial line is taken as real."""
    deadline = time.monotonic() + grace
    while True:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:  # pruned or compressed by a running logger since the glob
            return None
        if path.suffix == ".age":  # a sealed segment: whole, read by Debian's age
            try:
                raw = _decrypted(path)
            except (AssertionError, FileNotFoundError):
                if path.exists():
                    raise
                return None  # (removed since the glob: an uncommitted segment)
            if path.name.endswith(".gz.age"):
                raw = gzip.decompress(raw)
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        if not raw or raw.endswith(b"\n") or time.monotonic() > deadline:
            return raw
        time.sleep(0.01)


def file_bytes(log_dir: Path, pattern: str = "messages-*.json*") -> list[tuple[Path, bytes]]:
    """Each log file matching ``pattern`` and its bytes as a reader gets them: a sealed
    segment decrypted (by Debian's age), a gzip decompressed (see :func:`_whole_lines`)."""
    found = []
    for path in day_files(log_dir, pattern):
        raw = _whole_lines(path)
        if raw is not None:
            found.append((path, raw))
    return found


def log_lines(log_dir: Path, grace: float = 10.0) -> list[dict[str, Any]]:
    """Every logged message, parsed, from every log file (the current symlink skipped).

    Fails on a line that is not valid UTF-8 JSON ending in a newline; a partial last
    line gets ``grace`` seconds to complete first (see :func:`_whole_lines`).
    """
    found: list[dict[str, Any]] = []
    if not log_dir.exists():
        return found
    for path in day_files(log_dir, "messages-*.json*"):
        raw = _whole_lines(path, grace)
        if not raw:
            continue
        assert raw.endswith(b"\n"), f"{path} ends in a partial line"
        for line in raw.split(b"\n")[:-1]:
            found.append(json.loads(line.decode("utf-8")))
    return found


def logged_ids(log_dir: Path) -> list[int]:
    """Logged ids, sorted, duplicates kept (so tests can check "exactly once")."""
    return sorted(int(obj["id"]) for obj in log_lines(log_dir))


def committed_lines(log_dir: Path) -> list[FeedLine]:
    """Every line committed so far, as a consumer reads them (read.feed: ``search
    --follow``, serve's events, notify, ship). Logged is not yet committed: a held batch
    is in its file before the logger's next save records it, so a test that starts such
    a reader waits for this, not for :func:`logged_ids`."""
    return list(Feed(log_dir).poll())


class LoggerProcess:
    """``dead-drop-logger run`` as a subprocess, stderr captured to a file.

    ``wrapper`` goes before the command (e.g. strace for fault injection); ``preexec``
    runs in the child before exec (umask, resource limits); ``watch=False`` adds
    ``--no-watch``. ``target``: the options saying what to follow and where, instead of
    ``--db DB --log-dir LOG_DIR`` (rooms; or none at all, to take them from a settings
    file).
    """

    def __init__(
        self,
        db: Path,
        log_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
        preexec: Callable[[], None] | None = None,
        target: Sequence[str] | None = None,
        watch: bool = True,
    ):
        self.target = None if target is None else list(target)
        self.db = db
        self.log_dir = log_dir
        self.args = [*args, *(() if watch else ("--no-watch",))]
        if os.environ.get(ENCRYPTED_SUITE) == "1" and "--encrypt-to" not in self.args:
            self.args += encrypted_args()  # the whole suite run with encryption on
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
        self.env = {**inherited, **(env or {})}  # only the test's own settings apply
        self.wrapper = list(wrapper)
        self.preexec = preexec
        self.stderr_path = log_dir.parent / f"logger-stderr-{id(self)}.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> LoggerProcess:
        cmd = [
            *self.wrapper,
            *logger_command(),
            "run",
            *(
                ["--db", str(self.db), "--log-dir", str(self.log_dir)]
                if self.target is None
                else self.target
            ),
            "--poll-interval",
            "0.05",
            *self.args,
            *extra,
        ]
        with open(self.stderr_path, "wb") as err:  # fresh per start: wait_ready reads it
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.env,
                preexec_fn=self.preexec,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait_ready(self) -> None:
        """Until the logger says it is following: its start position is fixed on disk and
        its signal handlers are installed."""
        wait_until(
            lambda: "INFO: following " in self.stderr() or self._died(),
            what="the logger to start following",
        )
        assert not self._died(), self.stderr()

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the real user's settings file: the config dir is a fresh temporary
    one (for in-process commands and for every process a test starts)."""
    config_home = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.delenv("DEAD_DROP_CONFIG", raising=False)
    return config_home / "dead-drop-logger" / "config.toml"


@pytest.fixture
def server_db(tmp_path: Path) -> Path:
    """An empty database built exactly like the Dead Drop server's."""
    path = tmp_path / "messages.db"
    serverdb.create(path)
    return path


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_ways: run with change notifications and with --no-watch"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "watch_mode" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_ways"
    ):
        metafunc.parametrize("watch_mode", ["watch", "no-watch"])


@pytest.fixture
def watch_mode() -> str:
    """How the ``logger`` fixture's loggers wait: "watch" (the default) or "no-watch";
    a ``both_ways`` test gets both."""
    return "watch"


@pytest.fixture
def logger(
    server_db: Path, log_dir: Path, watch_mode: str
) -> Iterator[Callable[..., LoggerProcess]]:
    """Factory for logger processes on the test's database; all are killed at the end."""
    started: list[LoggerProcess] = []

    def make(
        *args: str, db: Path | None = None, env: dict[str, str] | None = None, **kw: Any
    ) -> LoggerProcess:
        kw.setdefault("watch", watch_mode == "watch")
        proc = LoggerProcess(db or server_db, log_dir, *args, env=env, **kw)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


def start_writer(db: Path, sends: int, *, interval: float = 0.0, prefix: str = "live"):
    """A concurrent writer process inserting ``sends`` sends like the server."""
    return subprocess.Popen(
        [
            sys.executable,
            WRITER,
            str(db),
            "--sends",
            str(sends),
            "--interval",
            str(interval),
            "--prefix",
            prefix,
        ],
        stdin=subprocess.DEVNULL,
    )


def stop_writer(writer: subprocess.Popen[bytes]) -> None:
    """Stop a :func:`start_writer` writer between two sends (SIGINT: a send in hand is
    rolled back; a SIGTERM could leave a commit that readers see only once SQLite
    recovers its WAL). For a writer that writes until told to stop: its rows are what
    the database holds afterwards."""
    writer.send_signal(signal.SIGINT)
    writer.wait(timeout=DEADLINE)


class FakeClock:
    """An injectable clock (dead_drop_logger.clock.Clock) set by the test; ``running``
    makes it advance in real time from its start (for waits that must wake by themselves).
    """

    def __init__(self, start: str, tz: dt.tzinfo = dt.UTC, *, running: bool = False) -> None:
        self.current = dt.datetime.fromisoformat(start).replace(tzinfo=tz)
        self.running = running
        self._base = time.monotonic()
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            if not self.running:
                return self.current
            return self.current + dt.timedelta(seconds=time.monotonic() - self._base)

    def set(self, when: str) -> None:
        with self._lock:
            self.current = dt.datetime.fromisoformat(when).replace(tzinfo=self.current.tzinfo)
            self._base = time.monotonic()

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.current += dt.timedelta(**delta)


@pytest.fixture
def home_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose HOME is a fresh temporary directory.

    No DEAD_DROP_* or XDG_* variable leaks in, and no session bus: per-user tools
    (the daemon's PID file, the installer, systemctl --user) see only this HOME.
    """
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEAD_DROP_", "XDG_", "DBUS_"))
    }
    env["HOME"] = str(home)
    return env


# What runs a process so that file modes bind it as they bind a user: as root (the
# tests' container), without the capabilities that bypass them (chmod 000 would not
# deny root a read); as anyone else, as it is.
UNPRIVILEGED: list[str] = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
)


def run_command(
    *args: str,
    env: dict[str, str],
    timeout: float = DEADLINE,
    cwd: Path | None = None,
    wrapper: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``dead-drop-logger ARGS`` to completion (in ``cwd``), output captured as text."""
    return subprocess.run(
        [*wrapper, *logger_command(), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def log_with_real_logger(
    db: Path, log_dir: Path, *args: str, until: Callable[[], Any] = lambda: True
) -> None:
    """Run the real logger (``--import-historical``, retention off) until every message
    in ``db`` is logged and ``until()`` holds, then stop it with SIGTERM."""
    want = serverdb.all_ids(db)
    proc = LoggerProcess(db, log_dir, "--import-historical", "--retention-days", "0", *args)
    proc.start()
    try:
        wait_until(lambda: logged_ids(log_dir) == want, what="every message logged")
        wait_until(until, what="the logger's work")
    finally:
        assert proc.stop() == 0, proc.stderr()


class HostileLogs:
    """A read-only log directory of :mod:`logsets`' hostile messages (see there)."""

    def __init__(self, db: Path, log_dir: Path, ids: dict[str, int]) -> None:
        self.db = db
        self.log_dir = log_dir
        self.ids = ids


@pytest.fixture(scope="session")
def hostile_logs(tmp_path_factory: pytest.TempPathFactory) -> HostileLogs:
    """Logged by the real logger in size parts; a second run gzips the older days.
    Shared by the session: tests only read it."""
    import logsets

    root = tmp_path_factory.mktemp("hostile")
    db, log_dir = root / "messages.db", root / "logs"
    serverdb.create(db)
    ids = logsets.fill(db)
    log_with_real_logger(db, log_dir, "--max-bytes", logsets.MAX_BYTES)
    first_plain = dt.date.fromisoformat(logsets.PLAIN_DAYS[0])
    after = (dt.date.today() - first_plain).days  # gzips every day before PLAIN_DAYS
    log_with_real_logger(
        db,
        log_dir,
        "--max-bytes",
        logsets.MAX_BYTES,
        "--compress-after",
        str(after),
        until=lambda: all(
            list(log_dir.glob(f"messages-{day}*.json.gz"))
            and not list(log_dir.glob(f"messages-{day}*.json"))
            for day in logsets.GZ_DAYS
        ),
    )
    return HostileLogs(db, log_dir, ids)
