"""Encryption at rest against plaintext, side by side in one run (docs/encryption.md).

    .venv/bin/python benchmarks/encryption.py            # 1,000,000 messages, 60 s idle
    .venv/bin/python benchmarks/encryption.py --quick    # 100,000 messages, 20 s idle
    .venv/bin/python benchmarks/encryption.py --quick --only agents   # agent-specific keys

The targets: encrypted days <= 2% larger than plaintext (compressed days: than the
``.gz``); ``search --count`` over 1,000,000 encrypted messages <= 1.5x the plaintext
time; a backfill of 1,000,000 with encryption <= 1.5x without; idle CPU with encryption
<= 0.1% of a core. Every figure comes from the real ``dead-drop-logger`` as a child
process; plaintext (the anchor) and encrypted runs are interleaved, and ``uptime``'s
load is printed with each figure (the machine is shared). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import dbgen  # noqa: E402
import serverdb  # noqa: E402


def command() -> list[str]:
    script = Path(sys.executable).parent / "dead-drop-logger"
    return [str(script) if script.exists() else "dead-drop-logger"]


def load() -> str:
    return (
        subprocess.run(["uptime"], capture_output=True, text=True)
        .stdout.split("load average:")[-1]
        .strip()
    )


def backfill(db: Path, log_dir: Path, extra: list[str]) -> float:
    """``run --import-historical`` timed until it says the import is done."""
    shutil.rmtree(log_dir, ignore_errors=True)
    err = log_dir.parent / f"{log_dir.name}-stderr.txt"
    with open(err, "wb") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*command(), "run", "--db", str(db), "--log-dir", str(log_dir),
             "--import-historical", "--retention-days", "0", "--poll-interval", "1", *extra],
            stdout=subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip
        while b"historical import:" not in err.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(err.read_text())
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    return wall


def size(log_dir: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in log_dir.glob("messages-*") if p.name.endswith(suffixes))


def search(
    log_dir: Path, extra: list[str], query: tuple[str, ...] = ("staging",)
) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [*command(), "search", "--count", *query, "--log-dir", str(log_dir), *extra],
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    return wall, done.stdout.strip()


def build_index(log_dir: Path, key: Path) -> float:
    """``index`` over a log directory (the encrypted one read with the identity)."""
    start = time.perf_counter()
    subprocess.run(
        [*command(), "index", "--log-dir", str(log_dir)],
        check=True, capture_output=True, env={**os.environ, "DEAD_DROP_IDENTITY": str(key)},
    )  # fmt: skip
    return time.perf_counter() - start


def drop_index(*log_dirs: Path) -> None:
    """No index: the scan is measured (a logger killed after a backfill has none yet)."""
    for log_dir in log_dirs:
        for path in log_dir.glob(".dead-drop-logger.index*"):
            path.unlink()


def compare_searches(
    plain_dir: Path,
    sealed_dir: Path,
    ident: list[str],
    label: str,
    runs: int = 3,
    query: tuple[str, ...] = ("staging",),
) -> tuple[str, ...]:
    """``search --count`` interleaved, plaintext then encrypted; the medians' row."""
    walls: dict[str, list[float]] = {"plain": [], "sealed": []}
    counts = set()
    for _ in range(runs):
        wall, found = search(plain_dir, [], query)
        walls["plain"].append(wall)
        counts.add(found)
        wall, found = search(sealed_dir, ident, query)
        walls["sealed"].append(wall)
        counts.add(found)
    assert len(counts) == 1, counts  # the same answer from both
    p, s = statistics.median(walls["plain"]), statistics.median(walls["sealed"])
    return (label, f"{s:.2f} s", f"{p:.2f} s", f"{s / p:.2f}x", "<= 1.5x", load())


def cpu_seconds(pid: int) -> float:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def idle(work: Path, extra: list[str], seconds: float) -> float:
    """CPU (% of a core) of a logger following a quiet database for ``seconds``."""
    db = work / f"idle-{len(extra)}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    serverdb.create(db)
    serverdb.send_many(db, 3)
    log_dir = work / f"idle-logs-{len(extra)}"
    shutil.rmtree(log_dir, ignore_errors=True)
    proc = subprocess.Popen(
        [*command(), "run", "--db", str(db), "--log-dir", str(log_dir), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(3)  # started, first start done
    serverdb.send_many(db, 2)  # a tail to seal: idle begins once it is logged (sealed)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        p.name.startswith("messages-") and p.stat().st_size for p in log_dir.iterdir()
    ):
        time.sleep(0.5)
    time.sleep(1)
    before, start = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    used = cpu_seconds(proc.pid) - before
    elapsed = time.monotonic() - start
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    return 100 * used / elapsed


def new_key(work: Path, name: str) -> tuple[Path, str]:
    key = work / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return key, recipient


def agent_keys(db: Path, work: Path, count: int) -> None:
    """Agent-specific keys (each content sealed to its agents and the escrow) against
    plaintext: backfill time, size per message, ``search --count`` with the escrow's
    identity (every content opened) and with none (metadata only)."""
    args = ["--encrypt-content-to-agents"]
    for name in serverdb.AGENTS:
        args += ["--agent-key", f"{name}={new_key(work, name)[1]}"]
    escrow, escrow_recipient = new_key(work, "escrow")
    args += ["--escrow-to", escrow_recipient]
    plain_dir, sealed_dir = work / "plain", work / "agents"
    walls: dict[str, list[float]] = {"plain": [], "agents": []}
    for _ in range(2):  # interleaved
        walls["plain"].append(backfill(db, plain_dir, []))
        walls["agents"].append(backfill(db, sealed_dir, args))
    p, s = statistics.median(walls["plain"]), statistics.median(walls["agents"])
    print("| what | agent keys | plaintext | ratio | load (1, 5, 15 min) |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| backfill of {count:,} | {s:.2f} s | {p:.2f} s | {s / p:.2f}x | {load()} |")
    a, b = size(plain_dir, (".json",)), size(sealed_dir, (".json",))
    print(
        f"| size of the day files | {b:,} B ({b / count:.0f} B a message) | {a:,} B"
        f" ({a / count:.0f} B a message) | +{100 * (b / a - 1):.1f}% | {load()} |"
    )
    for label, extra in (("escrow's identity", ["--identity", str(escrow)]), ("no identity", [])):
        plain_wall, plain_found = search(plain_dir, [])
        start = time.perf_counter()
        done = subprocess.run(
            [*command(), "search", "--count", "staging", "--log-dir", str(sealed_dir), *extra],
            capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        found = done.stdout.strip()
        print(
            f"| search --count, {label} ({found} found; plain {plain_found}) | {wall:.2f} s"
            f" | {plain_wall:.2f} s | {wall / plain_wall:.2f}x | {load()} |"
        )
    by_id = ["--from", serverdb.AGENTS[0]]
    plain_wall = time.perf_counter()
    subprocess.run([*command(), "search", "--count", *by_id, "--log-dir", str(plain_dir)],
                   capture_output=True, check=True)  # fmt: skip
    plain_wall = time.perf_counter() - plain_wall
    wall = time.perf_counter()
    subprocess.run([*command(), "search", "--count", *by_id, "--log-dir", str(sealed_dir)],
                   capture_output=True, check=True)  # fmt: skip
    wall = time.perf_counter() - wall
    print(f"| search --count --from (metadata, no identity) | {wall:.2f} s | {plain_wall:.2f} s"
          f" | {wall / plain_wall:.2f}x | {load()} |")  # fmt: skip
    print(f"\nmachine: {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--cache", default="/tmp/ddl-bench")
    parser.add_argument("--only", choices=["idle", "search", "agents"], help="measure only that")
    args = parser.parse_args()
    count = args.messages or (100_000 if args.quick else 1_000_000)
    idle_seconds = 20.0 if args.quick else 60.0
    db = dbgen.cached(Path(args.cache), count)
    work = Path(tempfile.mkdtemp(prefix="ddl-enc-bench-"))
    atexit.register(shutil.rmtree, work, True)  # (--only too: 1.2 GB of logs otherwise left)
    key = work / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    sealed = ["--encrypt-to", recipient]
    ident = ["--identity", str(key)]
    plain_dir, sealed_dir = work / "plain", work / "sealed"
    rows = []

    if args.only == "agents":
        agent_keys(db, work, count)
        return
    if args.only == "idle":
        for label, extra in (("plain", []), ("sealed", sealed)):
            cpu = idle(work, extra, idle_seconds)
            print(f"| idle CPU, {label} ({idle_seconds:.0f} s) | {cpu:.3f}% | load {load()} |")
        return
    if args.only == "search":  # the scan (no index), then through the index
        backfill(db, plain_dir, [])
        backfill(db, sealed_dir, sealed)
        drop_index(plain_dir, sealed_dir)
        row = compare_searches(plain_dir, sealed_dir, ident, f"search --count in {count:,}, scan")
        print("| " + " | ".join(row) + " |", flush=True)
        built = build_index(plain_dir, key), build_index(sealed_dir, key)
        print(f"(index built: plaintext {built[0]:.1f} s, encrypted {built[1]:.1f} s)")
        row = compare_searches(plain_dir, sealed_dir, ident, f"search --count in {count:,}, index")
        print("| " + " | ".join(row) + " |", flush=True)
        row = compare_searches(
            plain_dir, sealed_dir, ident, f"search --count --from juno in {count:,}, index",
            query=("--from", "juno"),
        )  # fmt: skip
        print("| " + " | ".join(row) + " |")
        return
    walls: dict[str, list[float]] = {"plain": [], "sealed": []}
    for _ in range(2):  # interleaved
        walls["plain"].append(backfill(db, plain_dir, []))
        walls["sealed"].append(backfill(db, sealed_dir, sealed))
    p, s = statistics.median(walls["plain"]), statistics.median(walls["sealed"])
    rows.append(
        (f"backfill of {count:,}", f"{s:.2f} s", f"{p:.2f} s", f"{s / p:.2f}x", "<= 1.5x", load())
    )

    plain_size, sealed_size = size(plain_dir, (".json",)), size(sealed_dir, (".age",))
    rows.append(("size of the day files", f"{sealed_size:,} B", f"{plain_size:,} B",
                 f"+{100 * (sealed_size / plain_size - 1):.3f}%", "<= +2%", load()))  # fmt: skip

    drop_index(plain_dir, sealed_dir)
    rows.append(
        compare_searches(plain_dir, sealed_dir, ident, f"search --count in {count:,}, scan")
    )
    build_index(plain_dir, key)
    build_index(sealed_dir, key)
    rows.append(
        compare_searches(plain_dir, sealed_dir, ident, f"search --count in {count:,}, index")
    )

    # compressed days: gzip before encryption (.json.gz.age) against the plain .gz
    gz_plain, gz_sealed = work / "gz-plain", work / "gz-sealed"
    backfill(db, gz_plain, ["--compress-after", "0"])
    subprocess.run(
        [*command(), "prune", "--log-dir", str(gz_plain), "--compress-after", "0",
         "--retention-days", "0"], check=True, capture_output=True,
    )  # fmt: skip
    backfill(db, gz_sealed, [*sealed, "--compress-after", "0"])
    a, b = size(gz_plain, (".gz",)), size(gz_sealed, (".gz.age",))
    rows.append(("size of compressed days (past days)", f"{b:,} B", f"{a:,} B",
                 f"+{100 * (b / a - 1):.3f}%", "<= +2% (of the .gz)", load()))  # fmt: skip

    for label, extra in (("plain", []), ("sealed", sealed)):
        cpu = idle(work, extra, idle_seconds)
        rows.append(
            (f"idle CPU, {label} ({idle_seconds:.0f} s)", f"{cpu:.3f}%", "", "", "<= 0.1%", load())
        )

    print("| what | encrypted | plaintext | ratio | target | load (1, 5, 15 min) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nmachine: {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
