"""One real ``dead-drop-logger run`` across a midnight faked with libfaketime: its clock
starts seconds before midnight and runs in real time; it is killed -9 after midnight
and restarted, and every message is still logged exactly once."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import serverdb
from conftest import LIBFAKETIME, LoggerProcess, faked, logged_ids, wait_until

pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed")


def test_a_real_logger_crosses_a_faked_midnight(
    server_db: Path, log_dir: Path, logger: Callable[..., LoggerProcess]
) -> None:
    log_dir.mkdir()
    stale = log_dir / "messages-2026-01-30.json"  # inside 30 days on 03-01, outside on 03-02
    stale.touch()
    link = log_dir / "messages-current.json"
    first = logger(env=faked("2026-03-01 23:59:55")).start()
    first.wait_ready()

    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "atlas", "evening", timestamp="2026-03-01T23:59:56")
    wait_until(lambda: logged_ids(log_dir) == sorted(sent), what="the evening message")

    new_day = log_dir / "messages-2026-03-02.json"
    wait_until(
        lambda: link.is_symlink() and os.readlink(link) == new_day.name,
        what="the symlink to switch at the faked midnight",
    )
    assert new_day.exists() and stat.S_IMODE(new_day.stat().st_mode) == 0o600
    wait_until(lambda: not stale.exists(), what="retention after midnight")

    sent += serverdb.send(conn, "atlas", "vega", "morning", timestamp="2026-03-02T00:00:03")
    wait_until(lambda: logged_ids(log_dir) == sorted(sent), what="the morning message")
    first.kill()
    sent += serverdb.send(conn, "vega", "orion", "while down", timestamp="2026-03-02T00:00:30")

    second = logger(env=faked("2026-03-02 00:01:00")).start()
    wait_until(lambda: logged_ids(log_dir) == sorted(sent), what="the restart to catch up")
    assert second.stop() == 0, second.stderr()
    assert os.readlink(link) == new_day.name
    assert (log_dir / "messages-2026-03-01.json").read_bytes().count(b"\n") == 2  # + its CC
    assert "Traceback" not in first.stderr() + second.stderr()
    conn.close()
