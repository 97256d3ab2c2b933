"""A one-row batch against a log directory of 0, 1,100 and 10,000 day files.

    .venv/bin/python benchmarks/dirsize.py [--batches N] [--max-bytes SIZE]

What one follower batch of one send costs (the pipeline's transaction plus the
rotator's after-batch step, as ``run`` does them), in process, by the number of files
already in the log directory. Before issue 13 every batch listed the whole directory
(twice with ``--max-bytes``); three years of day files is 1,100. Run it against
another checkout with ``PYTHONPATH=OTHER/`` to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import serverdb  # noqa: E402  (the one fixture module for the server's schema)

from dead_drop_logger.clock import SystemClock  # noqa: E402
from dead_drop_logger.control.sizes import parse_size  # noqa: E402
from dead_drop_logger.keep import housekeeping  # noqa: E402
from dead_drop_logger.record.pipeline import Pipeline  # noqa: E402
from dead_drop_logger.record.rotation import Rotator  # noqa: E402
from dead_drop_logger.record.source import Source  # noqa: E402
from dead_drop_logger.record.writer import DayWriter  # noqa: E402


def fill(log_dir: Path, count: int) -> None:
    """``count`` old one-line day files, one a day back from yesterday."""
    day = dt.date.today() - dt.timedelta(days=1)
    for _ in range(count):
        (log_dir / f"messages-{day.isoformat()}.json").write_bytes(b'{"id":0}\n')
        day -= dt.timedelta(days=1)


def measure(work: Path, files: int, batches: int, max_bytes: int | None) -> list[float]:
    db, log_dir = work / f"db-{files}.db", work / f"logs-{files}"
    serverdb.create(db)
    clock = SystemClock()
    writer = DayWriter(log_dir, clock, max_bytes=max_bytes)
    shared = {"parts": writer.parts} if hasattr(writer, "parts") else {}
    keep = housekeeping.Policy(retention_days=0)  # keep every file, however old
    rotator = Rotator(log_dir, clock, policy=keep, max_bytes=max_bytes, **shared)
    pipeline = Pipeline(Source(db), log_dir, writer)
    pipeline.prepare(database_existed=True)  # the state first: not rebuilt from the files
    fill(log_dir, files)
    rotator.tick()
    conn = serverdb.connect(db)
    assert len(list(log_dir.glob("messages-*"))) >= files
    times: list[float] = []
    for i in range(batches + 1):
        serverdb.send(conn, "juno", "atlas", f"one row {i}", leads=())
        start = time.perf_counter()
        assert pipeline.follow_once().lines == 1
        rotator.tick(wrote=True)
        times.append(time.perf_counter() - start)
    conn.close()
    pipeline.close()
    return times[1:]  # the first batch after start may list the directory once


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--max-bytes", type=parse_size, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddl-dirsize-"))
    try:
        print("| files in the log dir | one-row batch, median ms | p90 ms |")
        print("|---:|---:|---:|")
        for files in (0, 1_100, 10_000):
            times = sorted(measure(work, files, args.batches, args.max_bytes))
            median = statistics.median(times) * 1000
            p90 = times[int(0.9 * (len(times) - 1))] * 1000
            print(f"| {files:,} | {median:.2f} | {p90:.2f} |")
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
