"""Task and agent following: the two targets of issue 19's write side, measured.

    .venv/bin/python benchmarks/tasks.py                 # 30 s of task changes, 60 s idle
    .venv/bin/python benchmarks/tasks.py --tasks 10000   # the same beside 10,000 tasks

1. Latency: a server taking tasks through its tools (tests/serverdb.py's SQL: every
   change with its transition message, in one commit) at random gaps (mean 0.1 s),
   beside ``--tasks`` tasks already there; for each change, from its commit to the
   first line of ``tasks-*.json`` that records it (a line of its own, or the ``via``
   of a gap), seen by a reader tailing the files every 2 ms. Target: p99 <= 50 ms.
2. Idle CPU: the logger at its default settings over a database with ``--tasks``
   tasks and 8 agents whose heartbeats turn stale and dead during the measurement
   (so the timed wake-ups are in it), nothing committed, CPU from /proc over
   ``--idle`` seconds. Target: <= 0.1 % of a core.

Reuses run.py's logger process, settings and percentiles; prints a markdown table.

``--anchor SRC`` measures the latency of the code in SRC (a checkout: say the one before
the incremental table record, ``git archive 621a818 | tar -x -C /tmp/anchor``) in the
same run, in rounds interleaved with this code's (``--rounds``, each ``--duration``
seconds), so both see the same load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import run  # noqa: E402
import serverdb  # noqa: E402  (the server's SQL)
from run import DEFAULT, Logger, fresh_db, percentile, say  # noqa: E402

OWN_COMMAND = run.logger_command


def use_code(src: Path | None) -> None:
    """Loggers started from now on run the code in ``src`` (None: this checkout's)."""
    if src is None:
        run.logger_command = OWN_COMMAND
        os.environ.pop("PYTHONPATH", None)
        return
    os.environ["PYTHONPATH"] = str(src)  # before the venv's own (editable) copy
    run.logger_command = lambda: [sys.executable, "-m", "dead_drop_logger"]


def seed_tasks(db: Path, count: int) -> None:
    """``count`` finished tasks, stamped over the past weeks, plus the team."""
    conn = serverdb.connect(db)
    serverdb.register(conn, "lead", role="lead")
    serverdb.register(conn, "juno", role="builder")
    start = dt.datetime.now() - dt.timedelta(days=30)
    conn.execute("BEGIN")
    for n in range(count):
        stamp = (start + dt.timedelta(seconds=n * 200)).isoformat()
        conn.execute(
            "INSERT INTO tasks (id, project, title, description, assigned_to, created_by,"
            " status, created_at, updated_at, completed_at) VALUES (?, 'web', ?, 'old work',"
            " 'juno', 'lead', 'verified', ?, ?, ?)",
            (f"TASK-{n + 1:03d}", f"old task {n}", stamp, stamp, stamp),
        )
    conn.execute("COMMIT")
    conn.close()


class Tail(threading.Thread):
    """Reads every tasks-*.json line as it appears: ``seen[(task, at)]`` = first time."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(daemon=True)
        self.log_dir = log_dir
        self.offsets: dict[Path, int] = {}
        self.lines: list[tuple[float, dict[str, object]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for path in sorted(self.log_dir.glob("tasks-*.json")):
                offset = self.offsets.get(path, 0)
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
                whole = data[: data.rfind(b"\n") + 1]
                if whole:
                    self.offsets[path] = offset + len(whole)
                    now = time.monotonic()
                    self.lines += [(now, json.loads(line)) for line in whole.splitlines()]
            time.sleep(0.002)


def changes(db: Path, duration: float) -> list[tuple[float, str, str]]:
    """The server at work: tasks created and moved along, one tool call at random gaps;
    returns (commit time, task, its updated_at) for every change."""
    conn = serverdb.connect(db)
    rng = random.Random(19)
    done: list[tuple[float, str, str]] = []
    live: dict[str, list[str]] = {}
    number = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        if len(live) < 5:
            task = serverdb.create_task(conn, "lead", f"new task {number}", assign_to="juno")
            live[task] = serverdb.task_path(number)[1:]
            number += 1
        else:
            task = rng.choice(sorted(live))
            status = live[task].pop(0)
            before = conn.execute("SELECT status FROM tasks WHERE id = ?", (task,)).fetchone()[0]
            if status == "review":
                serverdb.submit_for_review(conn, "juno", task, "done")
            elif before == "review" and status == "in_progress":
                serverdb.reject_task(conn, "lead", task, "tests missing")
            elif status == "completed":
                serverdb.approve_task(conn, "lead", task)
            elif status == "verified":
                serverdb.verify_task(conn, "lead", task)
            else:
                serverdb.update_task(conn, "juno", task, status)
            if not live[task]:
                del live[task]
        at = time.monotonic()
        stamp = conn.execute("SELECT updated_at FROM tasks WHERE id = ?", (task,)).fetchone()[0]
        done.append((at, task, stamp))
        time.sleep(rng.expovariate(1 / 0.1))
    conn.close()
    return done


def settle(logger: Logger) -> None:
    """Past start-up (its first read of every row): until a second passes without CPU."""
    last = -1.0
    while (used := logger.cpu_seconds()) - last > 0.005:
        last = used
        time.sleep(1)


def bench_latency(work: Path, tasks: int, duration: float) -> dict[str, float]:
    return latency_figures(latency_run(work, tasks, duration))


def latency_run(work: Path, tasks: int, duration: float) -> tuple[list[float], int, int]:
    """One round: each change's latency, the lines, the gaps."""
    db = fresh_db(work / "tasks-latency.db")
    seed_tasks(db, tasks)
    log_dir = work / "tasks-latency-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    logger = Logger(db, log_dir, DEFAULT)
    settle(logger)
    tail = Tail(log_dir)
    tail.start()
    done = changes(db, duration)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        recorded = {(str(line["task"]), str(line["at"])) for _, line in tail.lines}
        if (done[-1][1], done[-1][2]) in recorded:
            break
        time.sleep(0.05)
    tail.stopping.set()
    tail.join()
    logger.stop()
    latencies = []
    for at, task, stamp in done:  # the first line of the task at or after this change
        seen = [t for t, line in tail.lines if line["task"] == task and str(line["at"]) >= stamp]
        latencies.append(seen[0] - at if seen else float("inf"))
    gaps = sum(1 for _, line in tail.lines if line.get("gap"))
    return latencies, len(tail.lines), gaps


def latency_figures(*rounds: tuple[list[float], int, int]) -> dict[str, float]:
    latencies = [x for r in rounds for x in r[0]]
    return {
        "changes": len(latencies),
        "lines": sum(r[1] for r in rounds),
        "gaps": sum(r[2] for r in rounds),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
    }


def bench_idle(work: Path, tasks: int, duration: float) -> float:
    db = fresh_db(work / "tasks-idle.db")
    seed_tasks(db, tasks)
    conn = serverdb.connect(db)
    now = dt.datetime.now()
    for n in range(8):  # heartbeats that cross 2 and 10 minutes during the measurement
        beat = (now - dt.timedelta(seconds=100 + n * 70)).isoformat()
        serverdb.register(conn, f"agent{n}", now=beat)
        serverdb.ping(conn, f"agent{n}", now=beat)
    serverdb.send_many(db, 20)
    conn.close()
    log_dir = work / "tasks-idle-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    logger = Logger(db, log_dir, DEFAULT)
    settle(logger)
    before = logger.cpu_seconds()
    start = time.monotonic()
    time.sleep(duration)
    used = logger.cpu_seconds() - before
    elapsed = time.monotonic() - start
    logger.stop()
    events = sum(1 for p in log_dir.glob("agents-*.json") for _ in p.open())
    say(f"idle: {events} agent lines (registrations and health crossings)")
    return 100 * used / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks already in the table")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of changes")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU")
    parser.add_argument("--anchor", type=Path, help="a checkout whose latency to measure too")
    parser.add_argument("--rounds", type=int, default=1, help="latency rounds of each code")
    args = parser.parse_args()
    load = [f"{os.getloadavg()[0]:.2f}"]
    with tempfile.TemporaryDirectory(prefix="ddl-tasks-bench-") as tmp:
        work = Path(tmp)
        own: list[tuple[list[float], int, int]] = []
        anchor: list[tuple[list[float], int, int]] = []
        for number in range(args.rounds):
            say(f"latency {number + 1}/{args.rounds}: {args.duration:.0f} s beside {args.tasks}")
            own.append(latency_run(work, args.tasks, args.duration))
            if args.anchor is not None:
                use_code(args.anchor)
                say(f"latency {number + 1}/{args.rounds} of {args.anchor}")
                anchor.append(latency_run(work, args.tasks, args.duration))
                use_code(None)
            load.append(f"{os.getloadavg()[0]:.2f}")
        lat = latency_figures(*own)
        say(f"idle: {args.idle:.0f} s beside {args.tasks} tasks and 8 ageing agents")
        idle = bench_idle(work, args.tasks, args.idle) if args.idle > 0 else float("nan")
        load.append(f"{os.getloadavg()[0]:.2f}")
    print(f"Measured {run.machine()}; load average during: {', '.join(load)}")
    ok_lat = lat["p99"] <= 0.050
    ok_idle = idle <= 0.1
    print(f"| Target ({args.tasks} tasks in the table) | Figure | Verdict |")
    print("|---|---|---|")
    print(
        f"| task change to tasks-*.json, p99 <= 50 ms | p50 {lat['p50'] * 1000:.1f} ms,"
        f" p99 {lat['p99'] * 1000:.1f} ms, max {lat['max'] * 1000:.1f} ms"
        f" ({lat['changes']:.0f} changes, {lat['lines']:.0f} lines, {lat['gaps']:.0f} gaps)"
        f" | {'met' if ok_lat else 'MISSED'} |"
    )
    print(
        f"| idle CPU with task and agent following, <= 0.1 % of a core over"
        f" {args.idle:.0f} s | {idle:.3f} % | {'met' if ok_idle else 'MISSED'} |"
    )
    if anchor:
        old = latency_figures(*anchor)
        print(
            f"| anchor {args.anchor}, same run | p50 {old['p50'] * 1000:.1f} ms,"
            f" p99 {old['p99'] * 1000:.1f} ms, max {old['max'] * 1000:.1f} ms"
            f" ({old['changes']:.0f} changes) | |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
