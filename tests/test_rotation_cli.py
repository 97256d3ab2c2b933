"""The rotation options reach a real ``dead-drop-logger run``: parts, the link that
follows them, --keep-files, --compress-after (one of them through its environment
variable), and a bad size is one clear line."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import serverdb
from conftest import LoggerProcess, logged_ids, logger_command, wait_until

from dead_drop_logger.logdir import layout


def test_parts_link_keep_files_and_compression_in_a_real_run(
    server_db: Path, log_dir: Path, logger: Callable[..., LoggerProcess]
) -> None:
    log_dir.mkdir()
    old = log_dir / "messages-2020-01-01.json"
    old.write_bytes(b"")
    proc = logger(
        "--retention-days",
        "0",
        "--keep-files",
        "3",
        "--compress-after",
        "1",
        env={"DEAD_DROP_MAX_BYTES": "300"},
    ).start()
    proc.wait_ready()
    wait_until(lambda: layout.compressed_path(old).exists(), what="--compress-after")
    conn = serverdb.connect(server_db)
    sent: list[int] = []
    for i in range(8):
        sent += serverdb.send(conn, "juno", "atlas", f"message {i}")
    wait_until(lambda: logged_ids(log_dir)[-1:] == sent[-1:], what="the last message")

    def trimmed_and_linked() -> bool:
        files = layout.log_files(log_dir)
        link = os.readlink(log_dir / "messages-current.json")
        return len(files) <= 3 and link == files[-1].path.name

    wait_until(trimmed_and_linked, what="--keep-files and the link to the newest part")
    assert proc.stop() == 0, proc.stderr()
    files = layout.log_files(log_dir)
    # 8 sends with a CC each: far more than 300 bytes. Not files[-1]: should midnight
    # fall among the sends, the newest file is the new day's, with fewer parts.
    assert max(f.part for f in files) >= 3
    assert all(f.path.stat().st_size <= 300 for f in files)
    kept = logged_ids(log_dir)  # the newest messages, each exactly once
    assert kept == sent[-len(kept) :]
    assert not layout.compressed_path(old).exists()  # the oldest file, beyond --keep-files
    conn.close()


def test_a_bad_size_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*logger_command(), "run", "--log-dir", str(tmp_path), "--max-bytes", "lots"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "'lots' is not a size" in result.stderr and "Traceback" not in result.stderr
