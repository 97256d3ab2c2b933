"""Interface and privacy: usage errors, no tracebacks, private files, read-only database."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import serverdb
from conftest import logger_command, wait_until
from faultkit import assert_clean, wait_all_logged

NO_LOGS = pytest.mark.plain_only(
    "the command exits before a log is written: a sealed run would be the same run"
)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*logger_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@NO_LOGS
@pytest.mark.parametrize(
    "args",
    [
        ["--poll-interval", "abc"],
        ["--poll-interval", "-1"],
        ["--poll-interval", "0"],
        ["--log-level", "loud"],
        ["--retention-days", "-1"],
        ["--max-bytes", "lots"],
        ["--keep-files", "0"],
        ["--compress-after", "soon"],
        ["--no-such-flag"],
        ["unexpected-argument"],
    ],
)
def test_bad_options_exit_2_in_one_line(server_db: Path, log_dir: Path, args: list[str]) -> None:
    result = run_cli("run", "--db", str(server_db), "--log-dir", str(log_dir), *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("dead-drop-logger: error: "), result.stderr
    assert result.stderr.count("\n") == 1 and args[0] in result.stderr, result.stderr
    assert_clean(result.stderr)
    assert not log_dir.exists()  # nothing was started


@NO_LOGS
def test_bad_option_from_the_environment_exits_2(server_db: Path, log_dir: Path) -> None:
    result = run_cli(
        "run", "--db", str(server_db), "--log-dir", str(log_dir),
        env={"DEAD_DROP_POLL_INTERVAL": "soon"},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        2,
        "dead-drop-logger: error: invalid value for --poll-interval (from"
        " $DEAD_DROP_POLL_INTERVAL): 'soon' is not a valid number\n",
    )
    assert_clean(result.stderr)


@NO_LOGS
def test_unknown_command_exits_2() -> None:
    result = run_cli("frobnicate")
    assert (result.returncode, result.stderr) == (
        2,
        "dead-drop-logger: error: no such command 'frobnicate'\n",
    )
    assert_clean(result.stderr)


def boom(tmp_path: Path) -> dict[str, str]:
    """An environment whose logger hits a bug: a sitecustomize makes polling raise."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "from dead_drop_logger.record import source\n"
        "def changed(self):\n"
        "    raise RuntimeError('boom')\n"
        "source.Source.changed = changed\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@NO_LOGS
def test_a_bug_is_one_line_and_its_traceback_only_at_debug(
    server_db: Path, log_dir: Path, tmp_path: Path
) -> None:
    args = ["run", "--db", str(server_db), "--log-dir", str(log_dir), "--poll-interval", "0.05"]
    env = boom(tmp_path)
    quiet = run_cli(*args, env=env)
    assert quiet.returncode == 1, quiet.stderr
    assert quiet.stderr.splitlines()[-1] == "dead-drop-logger: error: unexpected RuntimeError: boom"
    assert_clean(quiet.stderr)

    debug = run_cli(*args, "--log-level", "debug", env=env)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr


def modes(log_dir: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(log_dir.stat().st_mode))}
    for path in log_dir.iterdir():
        found[path.name] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022])
def test_log_dir_and_files_are_private_whatever_the_umask(
    server_db: Path, tmp_path: Path, logger, umask: int
) -> None:
    log_dir = tmp_path / "deep" / "logs"
    proc = logger(preexec=lambda: os.umask(umask))
    proc.log_dir = log_dir
    proc.start()
    proc.wait_ready()
    serverdb.send_many(server_db, 3)
    serverdb.send(serverdb.connect(server_db), "juno", "vega", "no day", timestamp=None)
    wait_all_logged(log_dir, server_db)
    assert proc.stop() == 0
    (log_dir / ".dead-drop-logger.state").write_bytes(b"corrupt")  # set aside on restart
    again = logger(preexec=lambda: os.umask(umask))
    again.log_dir = log_dir
    again.start()
    wait_until(lambda: (log_dir / ".dead-drop-logger.state.corrupt").exists())
    assert again.stop() == 0

    found = modes(log_dir)
    assert found.pop(".") == oct(0o700)
    assert {".dead-drop-logger.state", ".dead-drop-logger.lock"} <= set(found)
    assert any(name.startswith("messages-") for name in found)
    assert set(found.values()) == {oct(0o600)}, found


def test_missing_parents_are_private_under_umask_022(
    server_db: Path, tmp_path: Path, logger
) -> None:
    """``~/.dead-drop`` and any other parent the logger has to create are 0700 too (they
    were 0755 under umask 022: Path.mkdir(parents=True) masks only the last one)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    dead_drop = home / ".dead-drop"
    pid_file = dead_drop / "run" / "logger.pid"
    proc = logger("--pid-file", str(pid_file), preexec=lambda: os.umask(0o022))
    proc.log_dir = dead_drop / "team" / "logs"
    proc.start()
    proc.wait_ready()
    assert proc.stop() == 0
    created = [dead_drop, dead_drop / "team", proc.log_dir, pid_file.parent]
    assert [oct(stat.S_IMODE(d.stat().st_mode)) for d in created] == [oct(0o700)] * 4
    assert stat.S_IMODE(home.stat().st_mode) == 0o755  # an existing parent is not ours


def test_existing_loose_log_dir_is_tightened(server_db: Path, log_dir: Path, logger) -> None:
    log_dir.mkdir(mode=0o755)
    log_dir.chmod(0o755)
    proc = logger().start()
    proc.wait_ready()
    assert proc.stop() == 0
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700


def test_read_only_log_dir_is_not_made_writable(server_db: Path, log_dir: Path, logger) -> None:
    log_dir.mkdir()
    log_dir.chmod(0o500)
    proc = logger().start()
    assert proc.proc is not None
    if os.geteuid() == 0:  # root may write there anyway
        proc.wait_ready()
        assert proc.stop() == 0
    else:
        assert proc.proc.wait(timeout=60) == 1
        assert proc.stderr().splitlines() == [
            f"dead-drop-logger: error: log directory {log_dir} is not writable"
        ]
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o500


def test_database_is_opened_read_only(server_db: Path, log_dir: Path, logger) -> None:
    proc = logger().start()
    proc.wait_ready()
    serverdb.send_many(server_db, 3)
    wait_all_logged(log_dir, server_db)

    def db_fds() -> dict[str, int]:
        found = {}
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{proc.pid}/fd/{fd}")
            except OSError:
                continue
            if target == str(server_db):
                info = Path(f"/proc/{proc.pid}/fdinfo/{fd}").read_text()
                flags = int(info.split("flags:")[1].split()[0], 8)
                found[target] = flags & os.O_ACCMODE
        return found

    # SQLite opens the -wal file read-write whatever the mode (it never writes it from a
    # read-only connection); the database file itself must be read-only.
    fds = wait_until(db_fds, what="the database to be open")
    assert set(fds.values()) == {os.O_RDONLY}, fds
    assert proc.stop() == 0
