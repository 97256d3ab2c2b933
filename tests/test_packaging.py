"""The service files as install.sh renders them: systemd-analyze and plistlib judge them."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "install.sh"
UNIT_TEMPLATE = ROOT / "packaging" / "systemd" / "dead-drop-logger.service"
PLIST_TEMPLATE = ROOT / "packaging" / "launchd" / "com.dead-drop.logger.plist"


def render(kind: str, venv: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", str(INSTALL), "--render", kind, "--venv", str(venv)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def this_venv() -> Path:
    """The environment running the tests: its console script really exists."""
    return Path(sys.executable).parent.parent


def unit_settings(text: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def test_unit_has_the_required_settings(home_env: dict[str, str]) -> None:
    unit = unit_settings(render("systemd", this_venv(), home_env))
    script = this_venv() / "bin" / "dead-drop-logger"
    assert unit["ExecStart"] == f'"{script}" run --pid-file %h/.dead-drop/logger.pid'
    assert Path(script).is_absolute() and script.exists()
    assert unit["Type"] == "exec"
    assert unit["Restart"] == "on-failure"
    assert unit["RestartSec"] == "5"
    assert unit["WantedBy"] == "default.target"
    assert unit["NoNewPrivileges"] == "yes"
    assert unit["UMask"] == "0077"
    assert "ProtectSystem" not in unit and "ReadWritePaths" not in unit  # documented only
    assert "@" not in "".join(unit.values())


def verify(unit: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit)],
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_rendered_unit_passes_systemd_analyze(home_env: dict[str, str], tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    unit = tmp_path / "dead-drop-logger.service"
    unit.write_text(render("systemd", this_venv(), home_env))
    done = verify(unit, runtime)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dead-drop-logger" not in done.stdout + done.stderr  # not even a warning

    # The same check rejects a unit whose program does not exist, so it is a real check.
    broken = tmp_path / "broken" / "dead-drop-logger.service"
    broken.parent.mkdir()
    broken.write_text(render("systemd", tmp_path / "no-such-venv", home_env))
    assert verify(broken, runtime).returncode != 0


def test_rendered_plist_has_the_launchd_keys(home_env: dict[str, str], tmp_path: Path) -> None:
    venv = tmp_path / "odd & <named> venv"
    plist = plistlib.loads(render("launchd", venv, home_env).encode())
    assert plist["Label"] == "com.dead-drop.logger"
    assert plist["ProgramArguments"] == [
        str(venv / "bin" / "dead-drop-logger"),
        "run",
        "--pid-file",
        f"{home_env['HOME']}/.dead-drop/logger.pid",
    ]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == f"{home_env['HOME']}/.dead-drop/logger.log"
    assert isinstance(plist["ThrottleInterval"], int) and plist["ThrottleInterval"] > 0
    assert plist["Umask"] == 0o077


def test_templates_keep_their_placeholders() -> None:
    assert (
        'ExecStart="@DEAD_DROP_LOGGER@" run --pid-file %h/.dead-drop/logger.pid'
        in UNIT_TEMPLATE.read_text()
    )
    template = plistlib.loads(PLIST_TEMPLATE.read_bytes())
    assert template["ProgramArguments"] == ["@DEAD_DROP_LOGGER@", "run", "--pid-file", "@PID_FILE@"]
