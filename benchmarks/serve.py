"""``serve``: its targets, each measured with its anchor in the same run.

    .venv/bin/python benchmarks/serve.py                 # 1,000,000 messages logged
    .venv/bin/python benchmarks/serve.py --count 100000 --idle 20 --reconnects 30

On the cached log directory of ``--count`` messages (dbgen's database exported by
export_historical.py, as benchmarks/reading.py makes it), a real ``serve`` (port 0):

- **first answer**: from the process's start to its first answered request, 3 times;
- **/v1/messages?limit=100** (the newest page) p50/p99 over 200 requests on one
  keep-alive connection, interleaved request by request with the anchor: the same 100
  rows by ``sqlite3`` from the database (a process each, as a script would);
- **filtered NDJSON** against ``search --json`` for the same filters, interleaved,
  median of 3 (target: no slower than search + 10 %);
- **idle CPU** of ``serve`` with 10 SSE clients connected, over ``--idle`` seconds, and
  with none (its anchor);
- **RSS**: serve's peak (VmHWM) after all of the above.

Then, live (a fresh database, the real logger, a real ``serve``):

- **commit to the page's DOM** in headless Chromium: a MutationObserver notes when
  each message's row appears; the commit time is taken right after the server-like
  COMMIT; ``--sends`` sends 0.1 s apart (the page loaded over the same logs);
- **reconnects**: a steady writer (20 sends/s) while a client reconnects ``--reconnects``
  times with its Last-Event-ID, reading a random number of events each time; at the
  end every logged key must have come exactly once (gaps, repeats counted).

The load average (``uptime``) is written beside every figure: the machine is shared.
Prints a markdown report and writes it to ``benchmarks/results/serve-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
import dbgen  # noqa: E402
import reading  # noqa: E402
import run as bench  # noqa: E402
import serverdb  # noqa: E402

SERVING = re.compile(r"serving .* on (http://\S+/)")
TICKS = os.sysconf("SC_CLK_TCK")


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def pct(values: list[float], p: float) -> float:
    return bench.percentile(values, p)


class Serve:
    """A ``serve`` process on a free port."""

    def __init__(self, log_dir: Path, *args: str) -> None:
        fd, name = tempfile.mkstemp(prefix="serve-bench-", suffix=".txt")
        self.err_path = Path(name)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*bench.logger_command(), "serve", "--log-dir", str(log_dir), "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=fd,
        )
        os.close(fd)
        self.url = ""
        while not self.url:
            found = SERVING.search(self.err_path.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
            elif self.proc.poll() is not None:
                raise RuntimeError(self.err_path.read_text())
            else:
                time.sleep(0.002)

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.err_path.unlink()


def first_answer(logs: Path) -> float:
    start = time.monotonic()
    serve = Serve(logs, "--db", "/nonexistent")
    while True:
        try:
            if httpx.get(serve.url + "v1/messages?limit=1", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.002)
    took = time.monotonic() - start
    serve.stop()
    return took


def newest_pages(serve: Serve, db: Path, count: int) -> tuple[list[float], list[float]]:
    ours, anchor = [], []
    sql = "SELECT * FROM messages ORDER BY id DESC LIMIT 100"
    with httpx.Client(timeout=60) as client:
        client.get(serve.url + "v1/messages?limit=100")  # the connection, warm
        for _ in range(count):
            start = time.perf_counter()
            got = client.get(serve.url + "v1/messages?limit=100")
            ours.append(time.perf_counter() - start)
            assert got.status_code == 200 and len(got.json()["messages"]) == 100
            start = time.perf_counter()
            subprocess.run([bench.SQLITE3, "-json", str(db), sql], capture_output=True, check=True)
            anchor.append(time.perf_counter() - start)
    return ours, anchor


FILTERS = [
    ([("from", "juno")], ["--from", "juno"]),
    ([("from", "juno"), ("contains", "deploy")], ["--from", "juno", "--contains", "deploy"]),
    ([("regex", r"sales;\s"), ("no_cc", "1")], ["--regex", r"sales;\s", "--no-cc"]),
]  # fmt: skip


def ndjson_vs_search(serve: Serve, logs: Path, runs: int) -> list[tuple[str, float, float, int]]:
    rows = []
    for params, options in FILTERS:
        ours, theirs, size = [], [], 0
        for _ in range(runs):
            start = time.perf_counter()
            with httpx.stream(
                "GET",
                serve.url + "v1/messages",
                params=params,
                headers={"Accept": "application/x-ndjson"},
                timeout=600,
            ) as response:
                size = sum(len(piece) for piece in response.iter_raw())
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            done = subprocess.run(
                [*reading.search_cmd(logs, *options, "--json")], capture_output=True, check=False
            )
            theirs.append(time.perf_counter() - start)
            assert len(done.stdout) == size, (params, len(done.stdout), size)
        label = "&".join(f"{k}={v}" for k, v in params)
        rows.append((label, statistics.median(ours), statistics.median(theirs), size))
    return rows


def idle_cpu(serve: Serve, clients: int, seconds: float) -> float:
    stop = threading.Event()
    ready = threading.Barrier(clients + 1)

    def listen() -> None:
        try:
            with httpx.stream("GET", serve.url + "v1/events", timeout=None) as response:
                lines = response.iter_lines()
                next(lines)
                ready.wait()
                for _line in lines:
                    if stop.is_set():
                        return
        except httpx.TransportError:
            return  # serve stopped under it

    threads = [threading.Thread(target=listen, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    if clients:
        ready.wait(timeout=60)
    time.sleep(3)  # settle
    before, start = serve.cpu(), time.monotonic()
    time.sleep(seconds)
    used = serve.cpu() - before
    share = 100 * used / (time.monotonic() - start)
    stop.set()
    return share


# -- live ----------------------------------------------------------------------------


class Live:
    """A fresh database, the real logger and ``serve`` on it."""

    def __init__(self, work: Path) -> None:
        self.db, self.logs = work / "live.db", work / "live-logs"
        serverdb.create(self.db)
        conn = serverdb.connect(self.db)
        for name in ("juno", "vega", "atlas", "lead"):
            serverdb.register(conn, name)
            serverdb.ping(conn, name)
        conn.close()
        self.err = work / "logger.err"
        with open(self.err, "wb") as err:
            self.logger = subprocess.Popen(
                bench.logger_run(self.db, self.logs), stdin=subprocess.DEVNULL, stderr=err
            )
        while "INFO: following" not in self.err.read_text():
            time.sleep(0.01)
        self.serve = Serve(self.logs, "--db", str(self.db))

    def stop(self) -> None:
        self.serve.stop()
        self.logger.terminate()
        self.logger.wait(timeout=60)


def commit_to_dom(live: Live, sends: int) -> list[float]:
    from browser import Browser

    observe = """
    window.__seen = {};
    new MutationObserver(() => {
      const now = performance.timeOrigin + performance.now();
      for (const li of document.querySelectorAll('#feed li')) {
        if (!(li.dataset.key in window.__seen)) window.__seen[li.dataset.key] = now;
      }
    }).observe(document.getElementById('feed'), {childList: true});
    """
    commits: dict[str, float] = {}
    with Browser(1280, 900) as browser:
        browser.navigate(live.serve.url, settle=1.0)
        while not browser.evaluate("document.body.dataset.ready === '1'"):
            time.sleep(0.05)
        time.sleep(1.0)  # the EventSource open
        browser.evaluate(observe)
        conn = serverdb.connect(live.db)
        for i in range(sends):
            ids = serverdb.send(conn, "juno", "vega", f"bench {i}")
            at = time.time() * 1000
            for ident in ids:
                commits[f":{ident}"] = at
            time.sleep(0.1)
        conn.close()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            seen = browser.evaluate("window.__seen")
            if all(key in seen for key in commits):
                break
            time.sleep(0.2)
        assert all(key in seen for key in commits), "some messages never reached the page"
    return [(seen[key] - at) / 1000 for key, at in commits.items()]


def reconnects(live: Live, times: int, rate: float) -> tuple[int, int, int]:
    """(events received, gaps, repeats) over ``times`` reconnects under a steady writer."""
    rng = random.Random(7)
    got: list[str] = []
    stop = threading.Event()

    def write() -> None:
        conn = serverdb.connect(live.db)
        while not stop.is_set():
            serverdb.send(conn, "atlas", "juno", "steady")
            time.sleep(1 / rate)
        conn.close()

    writer = threading.Thread(target=write, daemon=True)
    last: str | None = None

    def session(wanted: int) -> None:
        nonlocal last
        headers = {"Last-Event-ID": last} if last else {}
        with httpx.stream("GET", live.serve.url + "v1/events", headers=headers, timeout=30) as r:
            ident, data, taken = None, None, 0
            for line in r.iter_lines():
                if line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and ident is not None:
                    last = ident
                    if data and data != "{}":
                        got.append(f":{json.loads(data)['id']}")
                        taken += 1
                    ident, data = None, None
                    if taken >= wanted:
                        return

    with httpx.stream("GET", live.serve.url + "v1/events", timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("id: "):
                last = line[4:]
                break
    start_keys = logged_keys()
    writer.start()
    for _ in range(times):
        session(rng.randint(1, 20))
    stop.set()
    writer.join()
    deadline = time.monotonic() + 60
    while len(logged_keys()) < len(serverdb.all_ids(live.db)) and time.monotonic() < deadline:
        time.sleep(0.1)
    expected = logged_keys() - start_keys
    if set(got) != expected:
        session(len(expected) - len(set(got)))
    gaps = len(expected - set(got))
    repeats = len(got) - len(set(got))
    return len(got), gaps, repeats


_live_logs: Path | None = None


def logged_keys() -> set[str]:
    assert _live_logs is not None
    keys = set()
    for path in sorted(_live_logs.glob("messages-*.json")):
        if path.is_symlink():
            continue
        keys |= {f":{json.loads(line)['id']}" for line in path.read_bytes().splitlines()}
    return keys


def main() -> int:
    global _live_logs
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dead-drop-logger-bench"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--sends", type=int, default=100)
    parser.add_argument("--reconnects", type=int, default=100)
    args = parser.parse_args()
    db = dbgen.cached(args.cache, args.count)
    logs = reading.log_dir_for(db, args.cache)
    lines = ["# dead-drop-logger: serve", "", f"Measured {bench.machine()}.", ""]

    def note(text: str) -> None:
        bench.say(text)
        lines.append(text)

    firsts, anchors = [], []
    for _ in range(3):  # interleaved with the anchor: the same newest message by the CLI
        firsts.append(first_answer(logs))
        start = time.monotonic()
        subprocess.run(reading.search_cmd(logs, "--json", "--reverse", "-n", "1"),
                       capture_output=True, check=True)  # fmt: skip
        anchors.append(time.monotonic() - start)
    note(
        f"- first answer after start: {', '.join(f'{t:.2f} s' for t in firsts)}; anchor"
        f" `search --json --reverse -n 1` (a process start and one answer):"
        f" {', '.join(f'{t:.2f} s' for t in anchors)} ({load()})"
    )

    serve = Serve(logs, "--db", "/nonexistent")
    ours, anchor = newest_pages(serve, db, args.requests)
    note(
        f"- `/v1/messages?limit=100` (newest, {args.count:,} logged), {args.requests} requests:"
        f" p50 {1000 * pct(ours, 50):.1f} ms, p99 {1000 * pct(ours, 99):.1f} ms; anchor"
        f" `sqlite3 -json` of the same 100 rows: p50 {1000 * pct(anchor, 50):.1f} ms,"
        f" p99 {1000 * pct(anchor, 99):.1f} ms ({load()})"
    )
    for label, mine, theirs, size in ndjson_vs_search(serve, logs, args.runs):
        note(
            f"- NDJSON `{label}`: {mine:.2f} s against `search --json` {theirs:.2f} s"
            f" ({mine / theirs:.2f}x; {size:,} bytes, identical size) ({load()})"
        )
    idle_none = idle_cpu(serve, 0, args.idle)
    idle_ten = idle_cpu(serve, 10, args.idle)
    note(
        f"- idle CPU over {args.idle:.0f} s: {idle_ten:.3f}% of a core with 10 SSE clients,"
        f" {idle_none:.3f}% with none ({load()})"
    )
    note(f"- serve's peak RSS after all of the above: {serve.peak_rss_mb():.0f} MB")
    serve.stop()

    with tempfile.TemporaryDirectory(prefix="serve-live-") as tmp:
        live = Live(Path(tmp))
        _live_logs = live.logs
        try:
            dom = commit_to_dom(live, args.sends)
            note(
                f"- commit to the page's DOM (headless Chromium), {len(dom)} rows:"
                f" p50 {1000 * pct(dom, 50):.0f} ms, p99 {1000 * pct(dom, 99):.0f} ms,"
                f" max {1000 * max(dom):.0f} ms ({load()})"
            )
            got, gaps, repeats = reconnects(live, args.reconnects, 20.0)
            note(
                f"- {args.reconnects} reconnects with Last-Event-ID under a writer at 20"
                f" sends/s: {got} events, {gaps} gaps, {repeats} repeats ({load()})"
            )
        finally:
            live.stop()
    out = HERE / "results" / "serve-latest.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if shutil.which("chromium") is None:
        sys.exit("chromium is needed for the commit-to-DOM figure")
    sys.exit(main())
