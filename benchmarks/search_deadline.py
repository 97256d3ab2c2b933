"""The cost of serve's request time limit on search's hot path (``Search.deadline``).

    .venv/bin/python benchmarks/search_deadline.py                      # this checkout
    .venv/bin/python benchmarks/search_deadline.py --old /path/to/old   # and the code before

A regex filter makes every line a candidate the loop parses (the case the per-line
deadline check is in), over 300,000 short lines in one day file. Each variant runs in
its own child process, interleaved round by round: ``old`` (a checkout without the
deadline, when given), ``none`` (this code, no deadline: the ``search`` command) and
``deadline`` (this code with a deadline that does not expire: ``serve``). The best of
the rounds is quoted, with ``uptime``'s load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time, re
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import dead_drop_logger.read.search as module
assert module.__file__.startswith(sys.argv[1]), module.__file__
from dead_drop_logger.read.reading import make_reader, make_window
reader = make_reader(Path(sys.argv[3]), make_window(None, None), False, ())
kw = {"deadline": time.monotonic() + 1e6} if sys.argv[2] == "deadline" else {}
search = module.Search(reader, module.Filters(regex=re.compile("step 1")), use_index=False, **kw)
start = time.perf_counter()
found = sum(1 for _ in search.run())
print(time.perf_counter() - start, found)
"""


def write_logs(log_dir: Path, count: int) -> None:
    (log_dir / ".dead-drop-logger.lock").touch()
    with open(log_dir / "messages-2026-03-01.json", "w", encoding="utf-8") as out:
        for i in range(1, count + 1):
            message = {
                "id": i, "from_agent": "juno", "to_agent": "vega",
                "content": f"deploy step {i} done",
                "timestamp": f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}",
                "read_flag": 0, "is_cc": 0, "cc_original_to": None, "task_id": None,
                "reply_to": None,
            }  # fmt: skip
            out.write(json.dumps(message, separators=(",", ":")) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=Path, help="a checkout of the code before")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--count", type=int, default=300_000)
    args = parser.parse_args()
    variants = [("none", HERE), ("deadline", HERE)]
    if args.old is not None:
        variants.insert(0, ("old", args.old.resolve()))
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_logs(Path(tmp), args.count)
        for _round in range(args.rounds):
            for name, root in variants:
                mode = "deadline" if name == "deadline" else "none"
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(root), mode, tmp],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                best[name] = min(best.get(name, float("inf")), float(out[0]))
    load = os.getloadavg()
    print(f"{args.count:,} lines, regex filter, best of {args.rounds} (load {load[0]:.1f}):")
    for name, seconds in best.items():
        print(f"  {name:9} {seconds:.3f} s")


if __name__ == "__main__":
    main()
