"""What the partials of ``stats`` add to the logger's upkeep of the index
(docs/benchmarks.md, "stats through the index"): the logger's path in one process (the
index kept open, its partials in memory), 100 new lines at a time over lines 10,000 to
20,000 of a day file, the CPU time of each update with the partials and without (the
same code, the partial not fed), twice each way, medians.

    .venv/bin/python benchmarks/index_partials.py [--day PATH] [--work DIR]

``--day``: a day file of the benchmark's logs (benchmarks/reading.py exports them);
its lines are copied into ``--work``, never written to it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

from dead_drop_logger.index.store import Store
from dead_drop_logger.read import indexed

DAY = "/tmp/dead-drop-logger-bench/messages-1000000-v1-logs/messages-2026-11-25.json"


def run(lines: list[bytes], work: Path, partials: bool) -> list[float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700, parents=True)
    day = work / "messages-2026-11-25.json"
    day.write_bytes(b"".join(lines[:10_000]))
    indexed.build(work)
    store = Store.open(work, write=True)
    assert store is not None
    store.partials_cache = {}  # as the logger's thread keeps them
    feed = indexed._partial
    if not partials:
        indexed._partial = lambda *args, **kwargs: None  # type: ignore[assignment]
    took = []
    try:
        for at in range(10_000, 20_000, 100):
            with open(day, "ab") as out:
                out.write(b"".join(lines[at : at + 100]))
            start = time.process_time()
            indexed.update(store, work)
            took.append(time.process_time() - start)
    finally:
        indexed._partial = feed  # type: ignore[assignment]
        store.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--day", type=Path, default=Path(DAY))
    parser.add_argument("--work", type=Path, default=Path("/tmp/dead-drop-logger-partials"))
    args = parser.parse_args()
    with open(args.day, "rb") as source:
        lines = [source.readline() for _ in range(20_000)]
    for _round in range(2):
        for partials in (True, False):
            took = run(lines, args.work, partials)
            label = "partials" if partials else "without "
            print(f"{label}: an update of 100 lines, median {statistics.median(took) * 1e3:.2f} ms,"
                  f" mean {statistics.mean(took) * 1e3:.2f} ms")  # fmt: skip
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
