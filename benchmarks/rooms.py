"""The rooms benchmark: many rooms in one logger process, at the default settings.

    .venv/bin/python benchmarks/rooms.py            # 50 rooms, 60 s idle, 30 s load
    .venv/bin/python benchmarks/rooms.py --quick    # 15 s idle, 10 s load

1. Idle: ROOMS rooms with history, nothing arriving: CPU of every thread of the logger
   (``/proc/PID/task/*/schedstat``) over the idle period, and its open descriptors.
2. One room alone (``--rooms-dir`` with a single room) receiving one send a second:
   commit-to-line p50/p99 (the single-room figure).
3. Room 0 written flat out (``load.py``, the sustained-writer benchmark's writer) while
   the other ROOMS-1 rooms receive one send a second each (``trickle.py``): their
   commit-to-line p99, against the single-room figure plus one batch of the busy room
   (a batch: the p99 gap between two successive appends to the busy room's log, which
   under a writer flat out is one batch's duration).

Reuses run.py's log watcher, percentile and machine description. Writes the table to
``benchmarks/results/rooms-latest.md``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (the main benchmark's helpers)
import serverdb  # noqa: E402  (run.py put tests/ on the path)

DEFAULT_WORK = Path("/tmp/dead-drop-logger-bench-rooms")


class RoomsLogger:
    """``dead-drop-logger run --rooms-dir`` at the default settings."""

    def __init__(self, rooms: Path, log_dir: Path, names: list[str]) -> None:
        cmd = [*bench.logger_command(), "run", "--rooms-dir", str(rooms), "--log-dir", str(log_dir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not all((log_dir / n / ".dead-drop-logger.state").exists() for n in names):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the rooms logger did not start")
            time.sleep(0.02)

    def cpu_seconds(self) -> float:
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total / 1e9

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


class LogWatchers(threading.Thread):
    """run.py's Watcher for each room's log dir, all from one thread, kept light so the
    measuring does not starve the logger of CPU: every ``every`` seconds one ``stat`` of
    each room's newest log file, and a Watcher's full poll only for a room whose file
    grew (or every ``rescan`` seconds, when a new file may have appeared)."""

    def __init__(
        self, watchers: list[bench.Watcher], every: float = 0.005, rescan: float = 0.25
    ) -> None:
        super().__init__(daemon=True)
        self.watchers = watchers
        self.every = every
        self.rescan = rescan
        self.stopping = threading.Event()

    def run(self) -> None:
        sizes: dict[int, tuple[Path, int]] = {}
        next_scan = 0.0
        while not self.stopping.is_set():
            full = time.monotonic() >= next_scan
            for k, watcher in enumerate(self.watchers):
                known = sizes.get(k)
                size = -1
                if known is not None:
                    try:
                        size = known[0].stat().st_size
                    except FileNotFoundError:
                        full = True
                if full or known is None or size != known[1]:
                    watcher.poll()
                    newest = max(watcher._offsets, key=lambda p: p.name, default=None)
                    if newest is not None:
                        sizes[k] = (newest, watcher._offsets[newest])
            if full:
                next_scan = time.monotonic() + self.rescan
            time.sleep(self.every)
        for watcher in self.watchers:
            watcher.poll()

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def make_rooms(work: Path, count: int, history: int = 20) -> tuple[Path, list[str]]:
    rooms = work / "rooms"
    shutil.rmtree(rooms, ignore_errors=True)
    names = [f"room{i:02d}" for i in range(count)]
    for name in names:
        db = serverdb.room_db(rooms, name)
        db.parent.mkdir(parents=True)
        serverdb.create(db)
        serverdb.send_many(db, history)  # real databases with history, not empty ones
    return rooms, names


def fresh_logs(work: Path, name: str) -> Path:
    log_dir = work / name
    shutil.rmtree(log_dir, ignore_errors=True)
    return log_dir


def bench_idle(work: Path, count: int, duration: float) -> dict[str, float]:
    rooms, names = make_rooms(work, count)
    logger = RoomsLogger(rooms, fresh_logs(work, "idle-logs"), names)
    time.sleep(3)  # past start-up
    before, start = logger.cpu_seconds(), time.monotonic()
    time.sleep(duration)
    used, elapsed = logger.cpu_seconds() - before, time.monotonic() - start
    fds = logger.fds()
    logger.stop()
    return {"cpu_pct": 100 * used / elapsed, "fds": fds, "rooms": count}


def trickle(out: Path, dbs: list[Path], duration: float) -> list[list[float]]:
    cmd = [sys.executable, str(HERE / "trickle.py"), str(out), *map(str, dbs)]
    subprocess.run([*cmd, "--duration", str(duration)], check=True)
    commits: list[list[float]] = json.loads(out.read_text())
    return commits


def latencies(commits: list[list[float]], watchers: list[bench.Watcher]) -> list[float]:
    seen = [{row_id: at for at, row_id in w.seen} for w in watchers]
    found = []
    for at, index, first, last in commits:
        for row_id in range(int(first), int(last) + 1):
            found.append(seen[int(index)][row_id] - at)
    return found


def wait_logged(commits: list[list[float]], watchers: list[bench.Watcher]) -> None:
    deadline = time.monotonic() + 60
    last: dict[int, int] = {}
    for _at, index, _first, high in commits:
        last[int(index)] = int(high)
    while not all(any(i == high for _, i in watchers[k].seen) for k, high in last.items()):
        if time.monotonic() > deadline:
            raise RuntimeError("rooms: the last messages never arrived")
        time.sleep(0.02)


def bench_single(work: Path, duration: float) -> dict[str, float]:
    rooms, names = make_rooms(work, 1)
    log_dir = fresh_logs(work, "single-logs")
    logger = RoomsLogger(rooms, log_dir, names)
    db = serverdb.room_db(rooms, names[0])
    watchers = [bench.Watcher(log_dir / names[0], db)]
    polling = LogWatchers(watchers)
    polling.start()
    commits = trickle(work / "single.json", [db], duration)
    wait_logged(commits, watchers)
    polling.stop()
    logger.stop()
    found = latencies(commits, watchers)
    return {
        "messages": len(found),
        "p50": bench.percentile(found, 50),
        "p99": bench.percentile(found, 99),
    }


def bench_busy(work: Path, count: int, duration: float) -> dict[str, float]:
    rooms, names = make_rooms(work, count)
    log_dir = fresh_logs(work, "busy-logs")
    logger = RoomsLogger(rooms, log_dir, names)
    dbs = [serverdb.room_db(rooms, n) for n in names]
    watchers = [bench.Watcher(log_dir / n, db) for n, db in zip(names, dbs, strict=True)]
    polling = LogWatchers(watchers)
    polling.start()
    busy = subprocess.Popen(  # the sustained-writer benchmark's writer, on room 0
        [
            sys.executable,
            str(HERE / "load.py"),
            str(dbs[0]),
            str(work / "busy.json"),
            "--duration",
            str(duration + 2),
        ]
    )
    time.sleep(1)  # the busy room is busy before the others' sends start
    commits = trickle(work / "quiet.json", dbs[1:], duration)
    assert busy.wait() == 0
    commits = [[at, index + 1, first, last] for at, index, first, last in commits]
    busy_commits = json.loads((work / "busy.json").read_text())
    wait_logged(commits + [[at, 0, lo, hi] for at, lo, hi in busy_commits], watchers)
    polling.stop()
    logger.stop()
    found = latencies(commits, watchers)
    appends = sorted({at for at, _ in watchers[0].seen})
    gaps = [b - a for a, b in itertools.pairwise(appends)]
    busy_rows = busy_commits[-1][2] - busy_commits[0][1] + 1
    for k, w in enumerate(watchers):  # exactly once, every room
        ids = [i for _, i in w.seen]
        if len(ids) != len(set(ids)):
            raise RuntimeError(f"room {k}: a line logged twice")
    return {
        "messages": len(found),
        "p50": bench.percentile(found, 50),
        "p99": bench.percentile(found, 99),
        "max": max(found),
        "batch_p99": bench.percentile(gaps, 99),
        "busy_rows_per_s": busy_rows / (busy_commits[-1][0] - busy_commits[0][0]),
    }


def report(args: argparse.Namespace, data: dict[str, dict[str, float]], took: float) -> str:
    idle, single, busy = data["idle"], data["single"], data["busy"]
    ms = 1000
    bound = single["p99"] + busy["batch_p99"]
    fd_bound = 3 * idle["rooms"]
    lines = [
        f"Measured {bench.machine()}.",
        f"Command: `.venv/bin/python benchmarks/rooms.py{' --quick' if args.quick else ''}`"
        f" ({took:.0f} s), default settings (poll 1.0 s, change notifications on).",
        "",
        "| measure | figure | target | |",
        "|---|---:|---|---|",
        f"| {idle['rooms']:.0f} idle rooms: CPU over {args.idle:.0f} s | "
        f"{idle['cpu_pct']:.3f}% of a core | <= 0.2% | {bench.verdict(idle['cpu_pct'] <= 0.2)} |",
        f"| {idle['rooms']:.0f} idle rooms: open file descriptors | {idle['fds']:.0f} | "
        f"<= 3 a room ({fd_bound:.0f}) + a constant | "
        f"{idle['fds'] - fd_bound:+.0f} beyond 3 a room |",
        f"| one room alone, 1 send/s: commit to line p50 / p99 | "
        f"{single['p50'] * ms:.1f} / {single['p99'] * ms:.1f} ms ({single['messages']:.0f} msgs) | "
        "the single-room figure | |",
        f"| room 0 flat out ({busy['busy_rows_per_s']:.0f} rows/s): one batch (p99 gap between "
        f"its appends) | {busy['batch_p99'] * ms:.1f} ms | | |",
        f"| the other {args.rooms - 1} rooms, 1 send/s each: commit to line p50 / p99 / max | "
        f"{busy['p50'] * ms:.1f} / {busy['p99'] * ms:.1f} / {busy['max'] * ms:.1f} ms "
        f"({busy['messages']:.0f} msgs) | p99 <= single p99 + one batch ({bound * ms:.1f} ms) | "
        f"{bench.verdict(busy['p99'] <= bound)} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--load", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="15 s idle, 10 s load")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args()
    if args.quick:
        args.idle, args.load = 15.0, 10.0
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    data: dict[str, dict[str, float]] = {}
    bench.say(f"idle: {args.rooms} rooms, {args.idle:.0f} s")
    data["idle"] = bench_idle(args.work, args.rooms, args.idle)
    bench.say(f"one room alone, 1 send/s for {args.load:.0f} s")
    data["single"] = bench_single(args.work, args.load)
    bench.say(f"room 0 flat out, {args.rooms - 1} rooms at 1 send/s, {args.load:.0f} s")
    data["busy"] = bench_busy(args.work, args.rooms, args.load)
    text = report(args, data, time.monotonic() - started)
    print(text)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "rooms-latest.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
