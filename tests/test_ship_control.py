"""``ship`` from the commands: ``[ship]`` in config.toml makes ``start`` ship (a thread
per sink in the daemon), ``status`` shows each sink's position, lag and last error,
secrets appear nowhere, a bad target is one line (exit 2), and a logger without
``[ship]`` imports none of the sinks' libraries (a real process, its imports traced)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serverdb
from conftest import logger_command, run_command, wait_until
from sinks import Nats, free_port, nats_server

SINK_LIBRARIES = ("nats", "psycopg", "dead_drop_logger.ship")


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    with nats_server(tmp_path_factory.mktemp("nats")) as server:
        yield server


def imported(tmp_path: Path, config: str, env: dict[str, str]) -> set[str]:
    """The modules a real ``run`` imports by the time it follows (and a little after)."""
    db = tmp_path / "messages.db"
    serverdb.create(db)
    serverdb.send_many(db, 2)
    settings = tmp_path / "config.toml"
    settings.write_text(config)
    err = tmp_path / "run-stderr.txt"
    with open(err, "wb") as out:
        proc = subprocess.Popen(
            [
                *logger_command(),
                "run",
                "--config",
                str(settings),
                "--db",
                str(db),
                "--log-dir",
                str(tmp_path / "logs"),
                "--import-historical",
            ],
            env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        wait_until(lambda: b"INFO: following " in err.read_bytes(), what="following")
        if "[ship]" in config:
            wait_until(
                lambda: list((tmp_path / "logs" / ".ship").glob("*.status.json")),
                what="the shipper at work",
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, err.read_text()
    names = set()
    for line in err.read_text().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def loaded(names: set[str]) -> set[str]:
    return {
        n
        for n in names
        if n.split(".")[0] in ("nats", "psycopg") or n.startswith("dead_drop_logger.ship")
    }


def test_run_without_ship_imports_no_sink_library(
    tmp_path: Path, home_env: dict[str, str], nats: Nats
) -> None:
    (tmp_path / "a").mkdir()
    without = imported(tmp_path / "a", "", home_env)
    assert "dead_drop_logger.record.follow" in without  # the trace works
    assert loaded(without) == set()
    (tmp_path / "b").mkdir()
    shipping = imported(tmp_path / "b", f'[ship]\nto = ["{nats.url}"]\n', home_env)
    assert {"nats", "dead_drop_logger.ship.shipper"} <= loaded(shipping)
    assert not any(n.startswith("psycopg") for n in shipping)  # only the sink's own


def test_start_ships_and_status_shows_each_sink(
    tmp_path: Path, home_env: dict[str, str], nats: Nats
) -> None:
    db = tmp_path / "messages.db"
    serverdb.create(db)
    serverdb.send_many(db, 5)
    log_dir = tmp_path / "logs"
    pid_file = tmp_path / "logger.pid"
    closed = free_port()  # nothing listens there: that sink retries
    settings = tmp_path / "config.toml"
    settings.write_text(
        "[ship]\n"
        f'to = ["{nats.url}?stream=CONTROL&subject=control",'
        f' "postgresql://ship:hunter2@127.0.0.1:{closed}/x"]\n'
        'password_env = "SHIP_PW"\n'
    )
    env = {**home_env, "SHIP_PW": "correct-horse"}
    common = ["--config", str(settings), "--pid-file", str(pid_file)]
    done = run_command(
        "start", *common, "--db", str(db), "--log-dir", str(log_dir), "--import-historical", env=env
    )
    assert done.returncode == 0, done.stderr
    try:
        wait_until(lambda: len(nats.messages("CONTROL")) == 10, what="shipped by the daemon")

        def sinks() -> list[dict[str, object]]:
            out = run_command("status", "--json", *common, env=env)
            return list(json.loads(out.stdout).get("ship", []))

        wait_until(
            lambda: (
                any(s.get("last_error") for s in sinks())
                and any(s.get("state") == "caught up" for s in sinks())
            ),
            what="both",
        )
        good, bad = sorted(sinks(), key=lambda s: str(s["kind"]))
        assert (good["kind"], good["shipped"], good["lag_lines"], good["lag_seconds"]) == (
            "nats",
            10,
            0,
            0.0,
        )
        assert good["last_key"] == ":10" and good["last_error"] is None
        assert bad["kind"] == "postgresql" and bad["state"] == "retrying"
        assert bad["lag_lines"] == 10 and bad["lag_seconds"] > 0
        assert "connection" in str(bad["last_error"]).lower()
        text = run_command("status", *common, env=env).stdout
        assert "ship nats://127.0.0.1" in text and "behind 0 lines" in text
        assert f"ship postgresql://127.0.0.1:{closed}/x: retrying" in text
        assert "behind 10 lines" in text and "last error at" in text
    finally:
        stopped = run_command("stop", *common, env=env)
        assert stopped.returncode == 0, stopped.stderr
    everything = [
        text,
        json.dumps(sinks() if False else []),
        (Path(home_env["HOME"]) / ".dead-drop" / "logger.log").read_text(),
    ]
    everything += [p.read_text() for p in (log_dir / ".ship").iterdir()]
    everything += [p.name for p in (log_dir / ".ship").iterdir()]
    assert not any("hunter2" in t or "correct-horse" in t for t in everything)


@pytest.mark.parametrize(
    ("config", "args", "said"),
    [
        ('[ship]\nto = ["ftp://example.org/x"]\n', ["run"], "unknown scheme 'ftp'"),
        ('[ship]\nto = "nats://x"\n', ["run"], "ship.to must be a list of URLs"),
        ("[ship]\nbatch = 3\n", ["start"], "unknown setting ship.batch"),
        ("[ship]\nbatch_lines = 0\n", ["run"], "ship.batch_lines: must be at least 1"),
        ("", ["ship"], "nothing to ship to"),
        ("", ["ship", "--to", "nats://"], "names no host"),
    ],
)
def test_a_bad_ship_setting_is_one_line(
    tmp_path: Path, home_env: dict[str, str], config: str, args: list[str], said: str
) -> None:
    settings = tmp_path / "config.toml"
    settings.write_text(config)
    done = run_command(
        *args, "--config", str(settings), "--log-dir", str(tmp_path / "l"), env=home_env
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("dead-drop-logger: error: ") and said in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_a_sink_without_its_library_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the [ship] extra, ship says what to install (exit 2), not a thread
    retrying an ImportError forever."""
    from click.testing import CliRunner

    from dead_drop_logger.control.cli import cli

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import fails, as uninstalled
    result = CliRunner().invoke(
        cli, ["ship", "--log-dir", str(tmp_path), "--to", "postgresql://u:pw@127.0.0.1/x"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "dead-drop-logger: error: shipping to postgresql://127.0.0.1/x needs psycopg:"
        " pip install 'dead-drop-logger[ship]'\n"
    )
