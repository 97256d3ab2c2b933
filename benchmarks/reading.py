"""Reading the logs: ``search`` against grep and jq, ``agents`` against ``search --count``,
a one-day range against the whole directory, and search's peak RSS, in one run.

    .venv/bin/python benchmarks/reading.py              # 1,000,000 messages, 3 runs each
    .venv/bin/python benchmarks/reading.py --count 100000 --runs 1

The log directory is written by the real ``export_historical.py`` from the cached
benchmark database (dbgen.py: ~400-byte contents with quotes, newlines, tabs,
non-ASCII; 10 days), and cached beside it. Every figure comes from the real
``dead-drop-logger`` command as a child process; pipelines run under ``sh -c`` and are
timed whole. grep and search alternate, and medians are quoted. ``jq`` (slow) runs once
per query, and its output is compared with ``search --json``'s line for line. Prints a
markdown report and writes it to ``benchmarks/results/reading-latest.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dbgen  # noqa: E402  (cached benchmark databases)
import run as bench  # noqa: E402  (the main benchmark's child-process helpers)

from dead_drop_logger.logdir import layout  # noqa: E402

JQ = shutil.which("jq") or "/usr/bin/jq"
AGENT = "juno"
NEEDLES = ("deploy merge", "café sales;")  # the words (absent here), and a rare pair


def log_dir_for(db: Path, cache: Path) -> Path:
    """The database's messages exported once by export_historical.py, then reused."""
    logs = cache / f"{db.stem}-logs"
    if not (logs / ".complete").exists():
        shutil.rmtree(logs, ignore_errors=True)
        bench.say(f"exporting {db.name} to {logs}")
        subprocess.run(
            [
                sys.executable,
                str(bench.EXPORT_SCRIPT),
                "--db",
                str(db),
                "--log-dir",
                str(logs),
                "--retention-days",
                "0",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (logs / ".complete").touch()
    return logs


CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) of each timed pipeline


def timed(pipeline: str, label: str = "") -> tuple[float, bytes]:
    """Wall time and output of ``sh -c pipeline``; its CPU time is kept under ``label``
    (on a shared machine CPU time is the steadier figure)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(["sh", "-c", pipeline], capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    CPU.setdefault(label or pipeline, []).append(cpu)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{pipeline}: {done.stderr.decode(errors='replace')}")
    return elapsed, done.stdout


def search_cmd(logs: Path, *args: str) -> list[str]:
    return [*bench.logger_command(), "search", "--log-dir", str(logs), *args]


def quote(cmd: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in cmd)


def compare(ours: Path, theirs: Path) -> str:
    """How ``search --json`` output and ``jq -c`` output compare, line for line."""
    left, right = ours.read_bytes().splitlines(), theirs.read_bytes().splitlines()
    if left == right:
        return f"identical ({len(left)} lines, byte for byte)"
    if len(left) == len(right) and all(
        json.loads(a) == json.loads(b) for a, b in zip(left, right, strict=True)
    ):
        return f"same {len(left)} objects in the same order (jq re-encodes some bytes)"
    return f"**DIFFERENT**: search {len(left)} lines, jq {len(right)} lines"


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="messages")
    parser.add_argument("--runs", type=int, default=3, help="runs per timed command")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dead-drop-logger-bench"))
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    db = dbgen.cached(args.cache, args.count)
    logs = log_dir_for(db, args.cache)
    files = layout.log_files(logs)
    names = " ".join(shlex.quote(str(f.path)) for f in files)
    size_mb = sum(f.path.stat().st_size for f in files) / 1e6
    work = args.cache / "reading-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lines = [
        "# dead-drop-logger: reading the logs",
        "",
        f"Measured {bench.machine()}.",
        "",
        f"{args.count:,} messages in {len(files)} day files, {size_mb:,.0f} MB"
        f" (export_historical.py from dbgen's database); medians of {args.runs} runs;"
        " times are wall clock, CPU is user + system of the whole pipeline.",
        "",
        "| query | search | grep pipeline | search/grep | CPU search / grep | jq | jq/search"
        " | matches | same as jq |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ok = True
    for needle in NEEDLES:
        ours = search_cmd(logs, "--from", AGENT, "--contains", needle, "--json")
        key = f'"from_agent":"{AGENT}"'
        grep = f"grep -h {shlex.quote(key)} {names} | grep {shlex.quote(needle)} | wc -l"
        search_times, grep_times = [], []
        counts = set()
        for _ in range(args.runs):
            wall, out = timed(f"{quote(ours)} | wc -l", f"search {needle}")
            search_times.append(wall)
            counts.add(int(out))
            wall, out = timed(grep, f"grep {needle}")
            grep_times.append(wall)
            counts.add(int(out))
        query = f'select(.from_agent=="{AGENT}" and (.content|contains({json.dumps(needle)})))'
        bench.say(f"jq over {len(files)} files for {needle!r}")
        ours_out, jq_out = work / "search.json", work / "jq.json"
        jq_wall, _ = timed(f"{JQ} -c {shlex.quote(query)} {names} > {jq_out}")
        timed(f"{quote(ours)} > {ours_out}")
        same = compare(ours_out, jq_out)
        s, g = median(search_times), median(grep_times)
        s_cpu, g_cpu = median(CPU[f"search {needle}"]), median(CPU[f"grep {needle}"])
        ok = ok and s <= 2 * g and jq_wall >= 10 * s and "DIFFERENT" not in same
        lines.append(
            f"| `--from {AGENT} --contains {json.dumps(needle, ensure_ascii=False)}` |"
            f" {s:.2f} s | {g:.2f} s | {s / g:.2f}x | {s_cpu:.2f} s / {g_cpu:.2f} s |"
            f" {jq_wall:.1f} s | {jq_wall / s:.0f}x |"
            f" {'/'.join(str(c) for c in sorted(counts))} | {same} |"
        )
        bench.say(lines[-1])

    # a one-day range against the whole directory
    day = files[len(files) // 2].day
    needle = NEEDLES[1]
    whole = search_cmd(logs, "--from", AGENT, "--contains", needle, "--count")
    ranged = [*whole, "--since", day.isoformat(), "--until", (day + dt.timedelta(1)).isoformat()]
    whole_t, day_t = [], []
    for _ in range(args.runs):
        whole_t.append(timed(quote(whole))[0])
        day_t.append(timed(quote(ranged))[0])
    # peak RSS, streaming: the query above and every line (1 per message)
    rss_query = bench.run_to_exit(search_cmd(logs, "--from", AGENT, "--json"), work / "a")
    rss_all = bench.run_to_exit(search_cmd(logs, "--json"), work / "b")
    rss_text = bench.run_to_exit(search_cmd(logs, "--agent", AGENT), work / "c")
    # agents against search --count, no filters
    agents_t, count_t = [], []
    agents_cmd = [*bench.logger_command(), "agents", "--log-dir", str(logs)]
    for _ in range(args.runs):
        agents_t.append(timed(quote(agents_cmd))[0])
        count_t.append(timed(quote(search_cmd(logs, "--count")))[0])
    a, c = median(agents_t), median(count_t)
    peak = max(rss_query.rss_mb, rss_all.rss_mb, rss_text.rss_mb)
    ok = ok and peak <= 64 and a <= 2 * c
    lines += [
        "",
        "| measure | figure | target |",
        "|---|---|---|",
        f"| one day (`--since {day} --until {day + dt.timedelta(1)}`) vs all"
        f" {len(files)} days, same query | {median(day_t):.2f} s vs {median(whole_t):.2f} s"
        " | time scales with the range |",
        f"| peak RSS: `--from {AGENT} --json` / every message `--json` / text of"
        f" `--agent {AGENT}` | {rss_query.rss_mb:.0f} / {rss_all.rss_mb:.0f} /"
        f" {rss_text.rss_mb:.0f} MB | <= 64 MB |",
        f"| `agents` vs `search --count` (no filters) | {a:.2f} s vs {c:.2f} s"
        f" ({a / c:.2f}x) | <= 2x |",
        "",
        f"All targets: {'PASS' if ok else '**FAIL**'}"
        f" (run took {(dt.datetime.now(dt.UTC) - started).total_seconds():.0f} s).",
    ]
    text = "\n".join(lines)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "reading-latest.md").write_text(text + "\n")
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
