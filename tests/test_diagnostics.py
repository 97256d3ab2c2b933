"""The daemon's own log file: capped in size, rotated, private."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dead_drop_logger import diagnostics


@pytest.fixture
def quiet_afterwards() -> Iterator[None]:
    yield
    root = logging.getLogger("dead_drop_logger")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def test_daemon_log_is_capped_with_two_old_copies_all_private(
    tmp_path: Path, quiet_afterwards: None
) -> None:
    log_file = tmp_path / "logger.log"
    old_umask = os.umask(0o022)
    try:
        diagnostics.configure("info", file=log_file)
        log = logging.getLogger("dead_drop_logger.test")
        line = "x" * 200
        for number in range(20_000):  # about 4.5 MiB: past the cap three times over
            log.info("record %d %s", number, line)
    finally:
        os.umask(old_umask)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["logger.log", "logger.log.1", "logger.log.2"]
    for name in names:
        path = tmp_path / name
        assert path.stat().st_size <= 1024 * 1024, name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    newest = (tmp_path / "logger.log").read_text(encoding="utf-8").splitlines()
    assert newest[-1].endswith(f"record 19999 {line}")
