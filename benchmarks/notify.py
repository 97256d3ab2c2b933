"""Notifications: the four targets of issue 22, measured against a real loopback receiver.

    .venv/bin/python benchmarks/notify.py                      # every part (~20 min)
    .venv/bin/python benchmarks/notify.py --part burst         # one part
    .venv/bin/python benchmarks/notify.py --part outage --outage 120   # a shorter outage

1. latency: ``dead-drop-logger run`` at its default settings with one webhook rule; a
   server stand-in (load.py) sends at random gaps (mean 0.1 s) for ``--duration`` s;
   for each line, its commit to the webhook's arrival at the receiver (and to the line
   readable in the log file, from the same run). Target: p99 <= 250 ms. The anchor, in
   the same run before and after: Apprise at its defaults sending three ntfy
   notifications to the same receiver (its per-plugin throttle, 5.5 s).
2. burst: 1,000 direct messages committed as fast as the server can, the receiver
   answering each in 1 ms: from the first commit to the last delivery, and every
   ``webhook-id`` once. Target: <= 10 s, none twice.
3. outage: a steady writer (a send every 0.5 s, message plus CC); the receiver up for a
   minute (the anchor: logging latency with deliveries going through), then it refuses
   connections for half of ``--outage`` s, answers 503 for the other half, and comes
   back. Every event delivered, in order, none lost; logging latency (commit to line
   in the file) p99 during the outage <= 50 ms and no worse than the minute before.
   ``--outage 600`` is the target's ten minutes.
4. kills: ``dead-drop-logger notify`` alone (the follower runs apart), killed with
   SIGKILL ``--kills`` times at random moments under a steady writer (a send every
   0.05 s), restarted each time. Target: nothing lost; a repeat only of the event in
   flight (its two copies next to each other, with the same ``webhook-id``).

5. idle: the CPU of ``run`` over ``--idle`` s with nothing arriving, with no rule, one,
   and five, in turn (each rule looks at the state files every 50 ms).

The machine's load (``uptime``) is printed with each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import serverdb  # noqa: E402  (the server's SQL)
from receiver import Answer, Receiver  # noqa: E402  (the tests' loopback receiver)
from run import Watcher, fresh_db, logger_command, percentile, run_load, say  # noqa: E402


def load() -> str:
    return os.getloadavg().__repr__()


class Setup:
    """A work directory with a settings file holding the rules, and the environment."""

    def __init__(self, work: Path, name: str, rules: str) -> None:
        self.dir = work / name
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "cfg" / "dead-drop-logger").mkdir(parents=True)
        config = self.dir / "cfg" / "dead-drop-logger" / "config.toml"
        config.write_text(rules)
        config.chmod(0o600)
        self.db = fresh_db(self.dir / "messages.db")
        self.log_dir = self.dir / "logs"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")},
            "XDG_CONFIG_HOME": str(self.dir / "cfg"),
        }

    def start(self, command: str = "run", *extra: str) -> subprocess.Popen[bytes]:
        args = [*logger_command(), command]
        if command == "run":
            args += ["--db", str(self.db), "--log-dir", str(self.log_dir), *extra]
        else:
            args += ["--log-dir", str(self.log_dir), *extra]
        return subprocess.Popen(
            args,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / f"{command}.err", "ab"),  # (closed with the process)
        )

    def wait_following(self, timeout: float = 60) -> None:
        """Until ``run`` has fixed its start position (a send before would be history,
        which a first start does not log)."""
        until(
            lambda: "INFO: following " in (self.dir / "run.err").read_text(),
            timeout,
            "the follower to start",
        )

    def wait_rule(self, name: str, timeout: float = 60) -> None:
        state = self.log_dir / ".notify" / f"{name}.state.json"
        deadline = time.monotonic() + timeout
        while not state.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"rule {name} never started; see {self.dir}")
            time.sleep(0.01)


def rule(name: str, url: str, extra: str = "") -> str:
    return f'[[notify]]\nname = "{name}"\nsink = "webhook"\nurl = "{url}"\n{extra}\n'


def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def key_id(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


# -- 1. latency ----------------------------------------------------------------------------


def apprise_anchor(receiver: Receiver) -> float:
    """Seconds Apprise takes, at its defaults, to send three ntfy notifications."""
    import apprise

    sender = apprise.Apprise()
    sender.add(f"ntfy://127.0.0.1:{receiver.port}/anchor")
    start = time.monotonic()
    for i in range(3):
        sender.notify(body=f"anchor {i}", title="anchor")
    return time.monotonic() - start


def bench_latency(work: Path, duration: float) -> dict[str, Any]:
    receiver = Receiver()
    before = apprise_anchor(receiver)
    setup = Setup(work, "latency", rule("all", receiver.url))
    proc = setup.start()
    setup.wait_following()
    setup.wait_rule("all")
    watcher = Watcher(setup.log_dir, setup.db)
    watcher.start()
    commits = run_load(setup.db, setup.dir, duration, 0.1)
    last = int(commits[-1][2])
    until(lambda: f":{last}" in receiver.ids(), 60, "the last webhook")
    watcher.stop()
    stop(proc)
    after = apprise_anchor(receiver)
    receiver.close()
    arrived = {key_id(r.headers["webhook-id"]): r.mono for r in receiver.delivered()
               if r.path == "/hook"}  # fmt: skip
    seen = {row_id: at for at, row_id in watcher.seen}
    hooks, lines, behind = [], [], []
    for at, first, last_id in commits:
        for i in range(int(first), int(last_id) + 1):
            hooks.append((arrived[i] - at) * 1000)
            lines.append((seen[i] - at) * 1000)
            behind.append((arrived[i] - seen[i]) * 1000)
    return {
        "events": len(hooks),
        "webhook_p50_ms": percentile(hooks, 50),
        "webhook_p99_ms": percentile(hooks, 99),
        "webhook_max_ms": max(hooks),
        "line_p50_ms": percentile(lines, 50),
        "line_p99_ms": percentile(lines, 99),
        "line_to_webhook_p50_ms": percentile(behind, 50),
        "line_to_webhook_p99_ms": percentile(behind, 99),
        "apprise_3_sends_s": [round(before, 2), round(after, 2)],
        "load": load(),
    }


# -- 2. burst ------------------------------------------------------------------------------


def bench_burst(work: Path, count: int) -> dict[str, Any]:
    receiver = Receiver()
    receiver.default = Answer(stall=0.001)
    setup = Setup(work, "burst", rule("burst", receiver.url) + '[notify.match]\nto = "lead"\n')
    proc = setup.start()
    setup.wait_following()
    setup.wait_rule("burst")
    conn = serverdb.connect(setup.db)
    start = time.monotonic()
    ids = [serverdb.send(conn, "juno", "lead", f"burst {i}")[0] for i in range(count)]
    committed = time.monotonic() - start
    until(lambda: len(receiver.delivered()) >= count, 120, "every webhook")
    time.sleep(1.0)  # anything sent twice would arrive now
    got = receiver.delivered()
    stop(proc)
    receiver.close()
    counts = Counter(r.headers["webhook-id"] for r in got)
    return {
        "events": count,
        "commit_s": round(committed, 2),
        "first_commit_to_last_delivery_s": round(max(r.mono for r in got) - start, 2),
        "delivered": len(counts),
        "twice": sum(1 for n in counts.values() if n > 1),
        "missing": len({f":{i}" for i in ids} - set(counts)),
        "load": load(),
    }


# -- 3. outage -----------------------------------------------------------------------------


def bench_outage(work: Path, outage: float, baseline: float = 60.0) -> dict[str, Any]:
    receiver = Receiver()
    setup = Setup(work, "outage", rule("outage", receiver.url))
    proc = setup.start()
    setup.wait_following()
    setup.wait_rule("outage")
    watcher = Watcher(setup.log_dir, setup.db)
    watcher.start()
    result: dict[str, list[list[float]]] = {}
    writer = threading.Thread(
        target=lambda: result.update(
            commits=run_load(setup.db, setup.dir, baseline + outage + 20, 0.5)
        )
    )
    writer.start()
    up_at = time.monotonic()
    say(f"outage: receiver up for {baseline:.0f} s (the anchor)")
    time.sleep(baseline)
    receiver.down()
    down_at = time.monotonic()
    say(f"outage: connection refused for {outage / 2:.0f} s")
    time.sleep(outage / 2)
    receiver.default = Answer(503, body=b"unavailable")
    receiver.up()
    say(f"outage: 503 for {outage / 2:.0f} s")
    time.sleep(outage / 2)
    receiver.default = Answer()
    back_at = time.monotonic()
    say("outage: back")
    writer.join()
    commits = result["commits"]
    want = [i for _at, first, last in commits for i in range(int(first), int(last) + 1)]
    until(lambda: {key_id(k) for k in receiver.ids()} >= set(want), 900, "every event")
    watcher.stop()
    stop(proc)
    receiver.close()
    got = [key_id(r.headers["webhook-id"]) for r in receiver.delivered()]
    seen = {row_id: at for at, row_id in watcher.seen}

    def lines(start: float, end: float) -> list[float]:
        return [
            (seen[i] - at) * 1000
            for at, first, last in commits
            if start <= at <= end
            for i in range(int(first), int(last) + 1)
        ]

    before, during = lines(up_at, down_at), lines(down_at, back_at)
    last_in = max(r.mono for r in receiver.delivered())
    return {
        "outage_s": outage,
        "events": len(want),
        "delivered": len(set(got)),
        "lost": len(set(want) - set(got)),
        "twice": len(got) - len(set(got)),
        "in_order": got == sorted(got),
        "all_delivered_s_after_back": round(last_in - back_at, 1),
        "attempts_while_down": len(receiver.received()) - len(got),
        "line_p99_ms_receiver_up": round(percentile(before, 99), 1),
        "line_p99_ms_during_outage": round(percentile(during, 99), 1),
        "line_max_ms_during_outage": round(max(during), 1),
        "load": load(),
    }


# -- 4. kills ------------------------------------------------------------------------------


def bench_kills(work: Path, kills: int) -> dict[str, Any]:
    receiver = Receiver()
    receiver.default = Answer(stall=0.005)
    setup = Setup(work, "kills", rule("kills", receiver.url))
    plain = setup.dir / "plain.toml"
    plain.write_text("# the follower: no rules\n")
    follower = setup.start("run", "--config", str(plain))
    notifier = setup.start("notify")
    setup.wait_following()
    setup.wait_rule("kills")
    sends = int(kills * 1.5 / 0.05) + 100
    writer = subprocess.Popen(
        [sys.executable, str(HERE.parent / "tests" / "serverdb.py"), str(setup.db),
         "--sends", str(sends), "--interval", "0.05"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    rng = random.Random(22)
    for n in range(kills):
        time.sleep(rng.uniform(0.3, 1.5))
        notifier.send_signal(signal.SIGKILL)
        notifier.wait()
        notifier = setup.start("notify")
        if n % 10 == 9:
            say(f"kills: {n + 1}")
    writer.wait()
    want = serverdb.all_ids(setup.db)
    until(lambda: {key_id(k) for k in receiver.ids()} >= set(want), 300, "every event")
    time.sleep(1.0)
    stop(notifier)
    stop(follower)
    receiver.close()
    order = [r.headers["webhook-id"] for r in receiver.delivered()]
    counts = Counter(order)
    collapsed = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    return {
        "kills": kills,
        "events": len(want),
        "lost": len({f":{i}" for i in want} - set(counts)),
        "repeated": sum(1 for n in counts.values() if n > 1),
        "repeats_not_in_flight": len(collapsed) - len(set(collapsed)),
        "repeated_more_than_once": sum(1 for n in counts.values() if n > 2),
        "load": load(),
    }


# -- 5. idle ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far (schedstat: nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def bench_idle(work: Path, seconds: float) -> dict[str, Any]:
    """CPU of ``run`` with nothing arriving: no rule, one rule, five rules, in turn."""
    receiver = Receiver()
    found: dict[str, Any] = {}
    for count in (0, 1, 5):
        rules = "".join(rule(f"r{i}", receiver.url) for i in range(count)) or "# none\n"
        setup = Setup(work, f"idle{count}", rules)
        proc = setup.start()
        setup.wait_following()
        if count:
            setup.wait_rule(f"r{count - 1}")
        serverdb.send(serverdb.connect(setup.db), "juno", "lead", "one line, then quiet")
        time.sleep(5)
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        used = cpu_seconds(proc.pid) - before
        stop(proc)
        found[f"{count}_rules_cpu_pct"] = round(100 * used / seconds, 3)
    receiver.close()
    found["load"] = load()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--part", choices=["latency", "burst", "outage", "kills", "idle", "all"], default="all"
    )
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--outage", type=float, default=600.0)
    parser.add_argument("--kills", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    everything = ["latency", "burst", "outage", "kills", "idle"]
    parts = everything if args.part == "all" else [args.part]
    results: dict[str, Any] = {}
    try:
        for part in parts:
            say(f"{part}: load {load()}")
            if part == "latency":
                results[part] = bench_latency(work, args.duration)
            elif part == "burst":
                results[part] = bench_burst(work, args.burst)
            elif part == "outage":
                results[part] = bench_outage(work, args.outage)
            elif part == "idle":
                results[part] = bench_idle(work, args.idle)
            else:
                results[part] = bench_kills(work, args.kills)
            print(json.dumps({part: results[part]}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
