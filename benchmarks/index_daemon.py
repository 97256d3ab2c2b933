"""What keeping the index current costs the logger (docs/index.md): its CPU and the
commit-to-line latency under a steady writer, with the index (this checkout) and
without (another checkout's ``dead-drop-logger``, the code before the index), in turns.

    .venv/bin/python benchmarks/index_daemon.py --baseline /work/main/.venv/bin/dead-drop-logger

Each turn: a fresh database, one logger, a writer sending at random gaps (mean
``--interval``) for ``--duration`` seconds; CPU is the logger process's (every thread:
the indexer's too), latency from each commit to its line being readable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench


def turn(command: str, work: Path, duration: float, interval: float) -> dict[str, float]:
    bench.logger_command = lambda: [command]  # type: ignore[assignment]
    db = bench.fresh_db(work / "steady.db")
    log_dir = work / "steady-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    logger = bench.Logger(db, log_dir, bench.DEFAULT)
    watcher = bench.Watcher(log_dir, db)
    watcher.start()
    cpu = logger.cpu_seconds()
    start = time.monotonic()
    commits = bench.run_load(db, work, duration, interval=interval)
    watcher.wait_for(int(commits[-1][2]), timeout=60)
    time.sleep(2.5)  # the indexer's look after the last batch
    used = logger.cpu_seconds() - cpu
    elapsed = time.monotonic() - start
    watcher.stop()
    logger.stop()
    figures = bench.latency_figures(watcher, commits)
    figures["cpu_pct"] = 100 * used / elapsed
    figures["indexed"] = float((log_dir / ".dead-drop-logger.index").exists())
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="dead-drop-logger without the index")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dead-drop-logger-bench-indexd"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ours = bench.logger_command()[0]
    rows = []
    for number in range(args.turns):
        for label, command in (("index", ours), ("no index", args.baseline)):
            load = os.getloadavg()[0]
            found = turn(command, args.work, args.duration, args.interval)
            rows.append((label, number, load, found))
            print(label, number, f"load {load:.2f}", found, flush=True)
    print("| logger | turn | load | messages | CPU % | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for label, number, load, f in rows:
        print(
            f"| {label} | {number + 1} | {load:.2f} | {f['messages']:.0f} | {f['cpu_pct']:.1f}"
            f" | {1000 * f['p50']:.1f} | {1000 * f['p99']:.1f} | {1000 * f['max']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
