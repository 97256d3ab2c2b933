"""Many rooms, each receiving about one send a second: records when each send committed.

``python trickle.py OUT DB... --duration S [--rate R]``: sends to each database in turn
(tests/serverdb.py: one transaction per send, message plus CC row) so that each gets R
sends a second, for S seconds, then writes ``[[commit_monotonic, db_index, first_id,
last_id], ...]`` as JSON to OUT (``time.monotonic`` is the system-wide CLOCK_MONOTONIC).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import serverdb  # the one fixture module for the server's schema and sends


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("dbs", type=Path, nargs="+")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--rate", type=float, default=1.0)
    args = parser.parse_args()
    conns = [serverdb.connect(db) for db in args.dbs]
    step = 1.0 / (args.rate * len(conns))
    commits: list[tuple[float, int, int, int]] = []
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < args.duration:
        index = i % len(conns)
        ids = serverdb.send(conns[index], "juno", "atlas", f"trickle {i}")
        commits.append((time.monotonic(), index, ids[0], ids[-1]))
        i += 1
        time.sleep(max(0.0, start + i * step - time.monotonic()))
    for conn in conns:
        conn.close()
    args.out.write_text(json.dumps(commits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
