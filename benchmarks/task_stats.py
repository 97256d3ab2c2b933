"""``stats`` over a million messages with and without 10,000 recorded tasks.

    .venv/bin/python benchmarks/task_stats.py                  # 1,000,000 messages, 10,000 tasks
    .venv/bin/python benchmarks/task_stats.py --size 100000 --tasks 1000 --runs 5

Target (issue 19): ``stats`` over 1,000,000 messages and 10,000 tasks is no slower than
``stats`` over the messages alone plus 10%. The messages are the stats/search
benchmarks' cached log directory (benchmarks/reading.py ``log_dir_for``); the second
directory holds hard links to the same day files (so the same bytes on disk, and the
cache is never written) plus ``tasks-*.json`` lines written exactly as the logger writes
them (tests/taskscript.py): each task created, started, sent to review, sometimes
reworked, completed and mostly verified, spread over the messages' days. The two
``stats`` runs are interleaved, ``runs`` times each, and medians are compared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import dbgen  # noqa: E402  (cached benchmark databases)
from reading import log_dir_for  # noqa: E402  (the search benchmark's exported files)
from run import logger_command, machine, run_to_exit, say, verdict  # noqa: E402
from taskscript import TaskLog  # noqa: E402  (task lines exactly as the logger writes them)

from dead_drop_logger.read import taskstats  # noqa: E402
from dead_drop_logger.read.logread import LogDir, Reader, Window  # noqa: E402

TARGET = 1.10


def write_tasks(log_dir: Path, days: list[dt.date], count: int, seed: int = 7) -> int:
    """``count`` task histories over ``days``; the number of lines written."""
    rng = random.Random(seed)
    log = TaskLog(log_dir)
    agents = ["juno", "vega", "atlas", "orion", "lyra"]
    lines = 0
    for i in range(count):
        name = f"TASK-{i + 1:05d}"
        at = dt.datetime.combine(rng.choice(days), dt.time(8)) + dt.timedelta(
            minutes=rng.randrange(600)
        )

        def later(minutes: int) -> str:
            nonlocal at
            at += dt.timedelta(minutes=rng.randrange(1, minutes))
            return at.isoformat()

        log.create(
            name,
            at.isoformat(),
            title=f"task {i}",
            project=rng.choice(["web", "api"]),
            assigned_to=rng.choice(agents),
            role_hat=rng.choice(["builder", "fixer"]),
        )
        log.move(name, "in_progress", later(120))
        log.move(name, "review", later(600))
        lines += 3
        if rng.random() < 0.2:
            log.move(name, "in_progress", later(60))
            log.move(name, "review", later(300))
            lines += 2
        if rng.random() < 0.1:
            continue  # left in review
        log.move(name, "completed", later(120))
        lines += 1
        if rng.random() < 0.7:
            log.move(name, "verified", later(600))
            lines += 1
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dead-drop-logger-bench"))
    args = parser.parse_args()
    messages_dir = log_dir_for(dbgen.cached(args.cache, args.size), args.cache)
    files = sorted(messages_dir.glob("messages-2*.json*"))
    both = Path(tempfile.mkdtemp(prefix="ddl-task-stats-"))
    try:
        for path in files:
            try:
                os.link(path, both / path.name)
            except OSError:  # another filesystem: a copy reads the same
                shutil.copy2(path, both / path.name)
        days = sorted({dt.date.fromisoformat(p.name[9:19]) for p in files})
        lines = write_tasks(both, days, args.tasks)
        task_mb = sum(p.stat().st_size for p in both.glob("tasks-*.json")) / 1e6
        tool = logger_command()
        commands = {
            "stats (messages)": [*tool, "stats", "--log-dir", str(messages_dir)],
            "stats (messages + tasks)": [*tool, "stats", "--log-dir", str(both)],
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        rss: dict[str, list[float]] = {name: [] for name in commands}
        alone: list[float] = []  # the task figures in this process: what the fork hides
        loads = [os.getloadavg()[0]]
        for run in range(args.runs):
            for name, cmd in commands.items():
                outcome = run_to_exit(cmd)
                walls[name].append(outcome.wall)
                rss[name].append(outcome.rss_mb)
                say(f"run {run + 1}/{args.runs} {name}: {outcome.wall:.2f} s")
            began = time.perf_counter()
            taskstats.read_figures(Reader([LogDir(both)], Window()), dt.datetime.now())
            alone.append(time.perf_counter() - began)
            loads.append(os.getloadavg()[0])
            say(f"run {run + 1}/{args.runs} task figures in one process: {alone[-1]:.2f} s")
    finally:
        shutil.rmtree(both, ignore_errors=True)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    ratio = wall["stats (messages + tasks)"] / wall["stats (messages)"]
    text = "\n".join(
        [
            "# stats with the task log",
            "",
            f"Measured {machine()}.",
            f"{args.size:,} messages in {len(files)} day files; {args.tasks:,} tasks in"
            f" {lines:,} task lines ({task_mb:.1f} MB); median of {args.runs} interleaved runs.",
            "",
            "| command | wall (s) | peak RSS (MB) |",
            "| --- | ---: | ---: |",
            *(f"| `{n}` | {wall[n]:.2f} | {max(rss[n]):.0f} |" for n in commands),
            "",
            f"The task figures alone, in one process (what `stats` would add without its"
            f" forked child, read/taskpending.py): {statistics.median(alone):.2f} s,"
            f" {statistics.median(alone) / wall['stats (messages)']:.1%} of `stats (messages)`."
            f" Load average during: {', '.join(f'{x:.2f}' for x in loads)}.",
            "",
            "| target | measured | verdict |",
            "| --- | --- | --- |",
            f"| with 10,000 tasks <= messages alone + 10% | {ratio:.3f}x |"
            f" {verdict(ratio <= TARGET)} |",
        ]
    )
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    (results / f"task-stats-{stamp}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
