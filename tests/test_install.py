"""install.sh as a user runs it from a checkout, in a temporary HOME.

Nothing here may reach the real user's service manager: the session bus is removed
and XDG_RUNTIME_DIR points at an empty directory, so ``systemctl --user`` finds no
manager and the installer must fall back to ``dead-drop-logger start``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import serverdb
from conftest import logged_ids, logger_command, wait_until
from procs import process_alive

from dead_drop_logger.control import configfile

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "install.sh"


def install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def user_env(home_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    return {**home_env, "XDG_RUNTIME_DIR": str(runtime)}


@pytest.fixture
def user_db(user_env: dict[str, str]) -> Path:
    """The server's database where the installer looks for it: ~/.dead-drop/messages.db."""
    db = Path(user_env["HOME"]) / ".dead-drop" / "messages.db"
    db.parent.mkdir(mode=0o700)
    serverdb.create(db)
    return db


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_help_lists_every_option(user_env: dict[str, str]) -> None:
    done = install(user_env, "--help")
    assert done.returncode == 0
    for option in ("--dry-run", "--uninstall", "--no-service", "--import-historical"):
        assert option in done.stdout
    bad = install(user_env, "--bogus")
    assert bad.returncode == 1 and "unknown option: --bogus" in bad.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck")
def test_shellcheck_is_clean() -> None:
    done = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("manager", ["none", "systemd", "launchd"])
def test_dry_run_prints_every_action_and_changes_nothing(
    user_env: dict[str, str], manager: str
) -> None:
    home = Path(user_env["HOME"])
    done = install({**user_env, "DEAD_DROP_SERVICE_MANAGER": manager}, "--dry-run")
    assert done.returncode == 0, done.stderr
    venv = home / ".local" / "share" / "dead-drop-logger" / "venv"
    out = done.stdout
    assert f"+ mkdir -p {home}/.dead-drop/logs" in out
    assert f"+ chmod 700 {home}/.dead-drop/logs" in out
    assert f"-m venv {venv}" in out
    # With the report, serve, ship, notify and encrypt extras (printed shell-quoted), so
    # every command (and apprise) works.
    extras = "\\[report\\,serve\\,ship\\,notify\\,encrypt\\]"
    assert f"+ {venv}/bin/python -m pip install --quiet --upgrade {ROOT}{extras}\n" in out
    assert f"+ write {venv}/dead-drop-logger-install.sh (this checkout's path)" in out
    # Nothing was installed, and it does not say so.
    assert not [line for line in out.splitlines() if line.startswith("installed")]
    assert f"would install {venv}/bin/dead-drop-logger (dry run: nothing was changed)" in out
    command = home / ".local" / "bin" / "dead-drop-logger"
    assert f"+ mkdir -p {command.parent}\n+ ln -sfn {venv}/bin/dead-drop-logger {command}\n" in out
    assert f"{command.parent} is not on your PATH" in done.stderr  # the test's PATH lacks it
    expected = {
        "none": f"+ {venv}/bin/dead-drop-logger restart",
        "systemd": "+ systemctl --user enable --now dead-drop-logger.service",
        "launchd": f"+ write {home}/Library/LaunchAgents/com.dead-drop.logger.plist",
    }
    assert expected[manager] in out
    assert tree(home) == []

    gone = install(user_env, "--dry-run", "--uninstall")
    assert gone.returncode == 0 and "logs are kept" in gone.stdout
    assert tree(home) == []


def test_import_historical_exports_with_the_services_settings(
    user_env: dict[str, str], user_db: Path
) -> None:
    """`dead-drop-logger export` with no option: the settings file and DEAD_DROP_* the
    service reads, so what it writes is what the service's retention keeps."""
    home = Path(user_env["HOME"])
    env = {**user_env, "DEAD_DROP_SERVICE_MANAGER": "none"}
    done = install(env, "--dry-run", "--import-historical")
    assert done.returncode == 0, done.stderr
    script = home / ".local" / "share" / "dead-drop-logger" / "venv" / "bin" / "dead-drop-logger"
    assert f"+ {script} export\n" in done.stdout


@pytest.mark.parametrize("kind", ["systemd", "launchd"])
def test_the_rendered_service_files_comments_keep_their_placeholders(
    user_env: dict[str, str], kind: str
) -> None:
    done = install(user_env, "--render", kind)
    assert done.returncode == 0, done.stderr
    script = Path(user_env["HOME"]) / ".local/share/dead-drop-logger/venv/bin/dead-drop-logger"
    comment = (
        "with @DEAD_DROP_LOGGER@ replaced by" if kind == "systemd" else "with @DEAD_DROP_LOGGER@ ("
    )
    assert comment in done.stdout  # the header explains the placeholder, as in the template
    setting = f'ExecStart="{script}" run' if kind == "systemd" else f"<string>{script}</string>"
    assert setting in done.stdout
    assert done.stdout.count("@DEAD_DROP_LOGGER@") == 1


def test_systemd_without_a_user_bus_changes_nothing_and_the_logger_keeps_running(
    user_env: dict[str, str], user_db: Path, tmp_path: Path
) -> None:
    """Asked for systemd where `systemctl --user` has no bus: refused before anything
    changes; the logger that runs (started by hand here) is not stopped."""
    home = Path(user_env["HOME"])
    venv = home / ".local" / "share" / "dead-drop-logger" / "venv"
    started = subprocess.run(
        [*logger_command(), "start"], env=user_env, capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("pid ")[1].split(")")[0])
    try:
        done = install({**user_env, "DEAD_DROP_SERVICE_MANAGER": "systemd"})
        assert done.returncode == 1
        assert done.stderr.startswith("install.sh: error: systemd was asked for, but")
        assert "nothing was changed and a running logger keeps running" in done.stderr
        assert done.stderr.count("\n") == 1
        assert not venv.exists()
        assert process_alive(pid)
        status = subprocess.run(
            [*logger_command(), "status"], env=user_env, capture_output=True, text=True
        )
        assert status.returncode == 0 and f"running (pid {pid})" in status.stdout
    finally:
        subprocess.run([*logger_command(), "stop"], env=user_env, capture_output=True)


def test_never_replaces_a_command_that_is_not_its_link(user_env: dict[str, str]) -> None:
    theirs = Path(user_env["HOME"]) / ".local" / "bin" / "dead-drop-logger"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("#!/bin/sh\necho theirs\n")
    done = install(user_env, "--dry-run", "--no-service")
    assert done.returncode == 0, done.stderr
    assert "ln -sfn" not in done.stdout
    assert f"{theirs} exists and is not this installation's link: left alone" in done.stderr
    gone = install(user_env, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert f"left {theirs} alone: it is not this installation's link" in gone.stdout
    assert theirs.read_text() == "#!/bin/sh\necho theirs\n"


def test_never_takes_over_a_directory_that_is_not_a_venv(user_env: dict[str, str]) -> None:
    precious = Path(user_env["HOME"]) / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    refused = install(user_env, "--dry-run", "--venv", str(precious))
    assert refused.returncode == 1 and "is not a virtual environment" in refused.stderr
    gone = install(user_env, "--uninstall", "--venv", str(precious))
    assert gone.returncode == 0, gone.stderr
    assert (precious / "keep.txt").read_text() == "mine"


def test_real_install_upgrade_and_uninstall_fall_back_without_systemd(
    user_env: dict[str, str], user_db: Path
) -> None:
    home, db = Path(user_env["HOME"]), user_db
    history = serverdb.send_many(db, 20, prefix="history")
    logs = home / ".dead-drop" / "logs"
    script = home / ".local" / "share" / "dead-drop-logger" / "venv" / "bin" / "dead-drop-logger"

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), "status"], env=user_env, capture_output=True, text=True, check=False
        )

    try:
        _install_upgrade_uninstall(user_env, home, db, history, logs, script, status)
    finally:  # never leave a daemon behind when an assertion failed
        if script.exists():
            subprocess.run([str(script), "stop"], env=user_env, capture_output=True, check=False)


def _install_upgrade_uninstall(
    user_env: dict[str, str],
    home: Path,
    db: Path,
    history: list[int],
    logs: Path,
    script: Path,
    status: Callable[[], subprocess.CompletedProcess[str]],
) -> None:
    # pip builds a local project in its own directory (build/, *.egg-info): install a
    # copy so parallel test runs never share those, and the checkout stays clean.
    source = home.parent / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "dead_drop_logger",
        source / "dead_drop_logger",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    user_env = {**user_env, "DEAD_DROP_INSTALL_SOURCE": str(source)}

    first = install(user_env, "--import-historical")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no usable service manager" in first.stdout
    assert script.exists()
    assert f"exported {len(history)} messages with ids 1..{history[-1]}" in first.stdout
    # The command is where the user's PATH looks (and it says so when PATH does not).
    command = home / ".local" / "bin" / "dead-drop-logger"
    assert f"the command: {command} -> {script}" in first.stdout
    assert f"{command.parent} is not on your PATH" in first.stderr
    on_path = {**user_env, "PATH": f"{command.parent}:/usr/bin:/bin"}
    found = subprocess.run(
        ["dead-drop-logger", "status"], env=on_path, capture_output=True, text=True, check=False
    )
    assert found.returncode == 0 and "running (pid" in found.stdout, found.stdout + found.stderr
    assert logs.stat().st_mode & 0o777 == 0o700
    assert logged_ids(logs) == history  # the historical import ran
    # The report extra is installed: `report` works, and a hint names install.sh.
    page = home / "team.html"
    report = subprocess.run(
        [str(script), "report", "-o", str(page)], env=user_env, capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    assert page.read_text().startswith("<!DOCTYPE html>")
    hint = subprocess.run(
        [
            str(script.parent / "python"),
            "-c",
            "from dead_drop_logger.installed import install_extra; print(install_extra('x'))",
        ],
        env=user_env,
        capture_output=True,
        text=True,
    )
    assert hint.stdout == f"{ROOT}/install.sh (run again: it installs the x extra)\n"
    settings = home / ".config" / "dead-drop-logger" / "config.toml"
    assert settings.read_text() == configfile.EXAMPLE  # all commented: defaults apply
    assert settings.stat().st_mode & 0o777 == 0o600
    running = status()
    assert running.returncode == 0, running.stdout
    first_pid = int(running.stdout.split("pid ")[1].split(")")[0])

    live = serverdb.send_many(db, 5, prefix="live")
    wait_until(lambda: logged_ids(logs) == history + live, what="the installed daemon to log")

    mine = configfile.EXAMPLE + "poll_interval = 0.5\n"
    settings.write_text(mine)
    again = install(user_env, "--import-historical")  # idempotent: upgrades in place
    assert again.returncode == 0, again.stdout + again.stderr
    assert "upgrading the installation" in again.stdout
    assert f"keeping your settings in {settings}" in again.stdout
    assert settings.read_text() == mine  # never overwritten
    assert status().returncode == 0
    wait_until(lambda: not process_alive(first_pid), what="the old daemon to be gone")
    more = serverdb.send_many(db, 5, prefix="after upgrade")
    wait_until(lambda: logged_ids(logs) == history + live + more, what="the upgraded daemon")

    gone = install(user_env, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not script.exists()
    assert not command.exists() and not command.is_symlink()
    assert not (home / ".local" / "share" / "dead-drop-logger").exists()
    assert not (home / ".dead-drop" / "logger.pid").exists()
    assert logged_ids(logs) == history + live + more  # the logs are kept
    assert settings.read_text() == mine  # and the settings

    nothing = install(user_env, "--uninstall")
    assert nothing.returncode == 0, nothing.stderr
