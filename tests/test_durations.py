"""Durations are printed one way everywhere (``65 ms``, ``39s``, ``5m 00s``, ``2h 52m``,
``3d 04h``): a task's span as a response time, in ``stats`` and in the daemon's status."""

from __future__ import annotations

from pathlib import Path

import pytest
import serverdb
from click.testing import CliRunner
from conftest import log_with_real_logger

from dead_drop_logger.control.cli import cli
from dead_drop_logger.durations import duration


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0, "0s"),
        (0.065, "65 ms"),
        (0.9999, "999 ms"),
        (1, "1s"),
        (39.5279, "39s"),
        (59.99, "59s"),
        (60, "1m 00s"),
        (1050.0, "17m 30s"),
        (3725, "1h 02m"),
        (2 * 3600 + 52 * 60 + 59.9, "2h 52m"),
        (86400 * 3 + 4 * 3600 + 1, "3d 04h"),
        (-90, "-1m 30s"),
        (float("nan"), "-"),
    ],
)
def test_one_form_for_every_duration(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.fixture(scope="module")
def spans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tasks whose spans are fractions of a second: 39.5279 s and 65 ms."""
    root = tmp_path_factory.mktemp("spans")
    db, log_dir = root / "messages.db", root / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    for when, task in [
        ("2026-02-20T10:00:00", "T-long"),
        ("2026-02-20T10:00:39.527900", "T-long"),
        ("2026-02-20T11:00:00.100000", "T-short"),
        ("2026-02-20T11:00:00.165000", "T-short"),
    ]:
        serverdb.send(conn, "juno", "lead", "working", timestamp=when, task_id=task)
    conn.close()
    log_with_real_logger(db, log_dir)
    return log_dir


def test_task_spans_print_as_response_times_do(spans: Path) -> None:
    result = CliRunner().invoke(cli, ["stats", "--log-dir", str(spans)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert next(x for x in lines if x.startswith("  T-long ")).endswith("  39s")
    assert next(x for x in lines if x.startswith("  T-short ")).endswith("  65 ms")
