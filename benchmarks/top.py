"""``top``'s two targets: a redraw within 250 ms of a commit (p99), and idle CPU <= 0.5%.

``python benchmarks/top.py [--commits 50] [--idle 60]``: builds a team's database with
tests/serverdb.py (5 agents, 4 open tasks, 2,000 messages logged by the real logger),
runs the real ``dead-drop-logger top`` on a pseudo-terminal of 80 x 24 and reads all it
draws. Latency: a writer process-alike commits ``set_status`` with a new text every
0.3-0.7 s (random, so commits fall anywhere in the one-second timer); each latency is
from the commit's return to the moment that text is read from the terminal. Idle: the
CPU time (user + system, every thread, from /proc) ``top`` uses over ``--idle`` seconds
with nothing written. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import random
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import serverdb  # the one fixture module for the server's schema and writes

CLK_TCK = os.sysconf("SC_CLK_TCK")


def logger() -> list[str]:
    return [str(Path(sys.executable).parent / "dead-drop-logger")]


def build(work: Path) -> tuple[Path, Path]:
    db, log_dir = work / "messages.db", work / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    for name, role in (("lead", "lead"), ("juno", "builder"), ("atlas", "tester"),
                       ("vega", "coder"), ("orion", "reviewer")):  # fmt: skip
        serverdb.register(conn, name, role=role)
        serverdb.ping(conn, name)
    for who in ("juno", "atlas", "orion"):
        serverdb.create_task(conn, "lead", f"work for {who}", assign_to=who)
    serverdb.create_task(conn, "lead", "unassigned work")
    conn.close()
    serverdb.send_many(db, 1000)
    proc = subprocess.Popen([*logger(), "run", "--db", str(db), "--log-dir", str(log_dir),
                             "--import-historical"], stderr=subprocess.DEVNULL)  # fmt: skip
    want = len(serverdb.all_ids(db))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = sum(p.read_bytes().count(b"\n") for p in log_dir.glob("messages-2*.json"))
        if lines >= want:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    return db, log_dir


class Terminal:
    """``top`` on a pseudo-terminal; a thread reads everything it draws, timestamped."""

    def __init__(self, db: Path, log_dir: Path) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(
            [*logger(), "top", "--db", str(db), "--log-dir", str(log_dir)],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.cond = threading.Condition()
        self.chunks: list[tuple[float, bytes]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.cond:
                self.chunks.append((time.monotonic(), data))
                self.cond.notify_all()

    def seen_at(self, text: bytes, after: float, timeout: float = 10.0) -> float:
        """When ``text`` was first read in output that arrived after ``after``."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                tail = b""
                for at, data in self.chunks:
                    if at < after:
                        continue
                    tail += data
                    if text in tail:
                        return at
                if time.monotonic() > end:
                    raise TimeoutError(f"{text!r} never drawn")
                self.cond.wait(0.05)

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def quit(self) -> int:
        os.write(self.master, b"q")
        code = self.proc.wait(timeout=10)
        os.close(self.master)
        return code


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    rng = random.Random(19)
    with tempfile.TemporaryDirectory() as tmp:
        db, log_dir = build(Path(tmp))
        term = Terminal(db, log_dir)
        term.seen_at(b"AGENT", 0.0)
        conn = serverdb.connect(db)
        latencies = []
        for i in range(args.commits):
            time.sleep(rng.uniform(0.3, 0.7))
            marker = f"status-{i:03d}"
            serverdb.set_status(conn, "juno", marker)
            committed = time.monotonic()
            latencies.append(term.seen_at(marker.encode(), committed) - committed)
        conn.close()
        time.sleep(2.0)
        before, start = term.cpu(), time.monotonic()
        time.sleep(args.idle)
        used, elapsed = term.cpu() - before, time.monotonic() - start
        code = term.quit()
    ms = [x * 1000 for x in latencies]
    print(json.dumps({
        "commits": len(ms),
        "redraw_ms": {"p50": round(percentile(ms, 50), 1), "p99": round(percentile(ms, 99), 1),
                      "max": round(max(ms), 1)},
        "idle_seconds": round(elapsed, 1),
        "idle_cpu_percent_of_a_core": round(100 * used / elapsed, 3),
        "exit_code": code,
    }))  # fmt: skip
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
