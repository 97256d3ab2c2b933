"""A server stand-in that records when each send committed, for latency and lag figures.

``python load.py DB OUT --duration S [--interval MEAN]``: sends like the Dead Drop
server (tests/serverdb.py: one transaction per send, message plus CC row) for S
seconds, as fast as it can or with random gaps averaging MEAN seconds, then writes
``[[commit_monotonic, first_id, last_id], ...]`` as JSON to OUT. ``time.monotonic`` is
the system-wide CLOCK_MONOTONIC, so the benchmark process can compare it with the
moment it sees each line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import serverdb  # the one fixture module for the server's schema and sends


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--interval", type=float, default=0.0)
    args = parser.parse_args()
    if not args.db.exists():
        serverdb.create(args.db)
    conn = serverdb.connect(args.db)
    rng = random.Random(1)
    agents = serverdb.AGENTS
    commits: list[tuple[float, int, int]] = []
    end = time.monotonic() + args.duration
    i = 0
    while time.monotonic() < end:
        ids = serverdb.send(conn, agents[i % 4], agents[(i + 1) % 4], f"load {i}: " + "x" * 380)
        commits.append((time.monotonic(), ids[0], ids[-1]))
        i += 1
        if args.interval:
            time.sleep(rng.uniform(0, 2 * args.interval))
    conn.close()
    args.out.write_text(json.dumps(commits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
