"""``stats`` and ``report`` over a million logged messages, side by side with ``search --count``.

    .venv/bin/python benchmarks/stats_report.py              # 1,000,000 messages, 3 runs
    .venv/bin/python benchmarks/stats_report.py --size 100000 --runs 5

The log directory is the search benchmark's (benchmarks/reading.py ``log_dir_for``):
dbgen's cached database (the server's schema, ~450-byte contents, 10 days) exported by
``export_historical.py`` into day files, cached beside the database. Every figure comes
from the real command as a child process (wall time; peak RSS sampled from /proc by
run.py's PeakRSS). The commands run interleaved, ``runs`` times each, and medians are
quoted, so a busy machine slows all of them alike. Prints a markdown table and writes it
to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dbgen  # noqa: E402  (cached benchmark databases)
from reading import log_dir_for  # noqa: E402  (the search benchmark's exported files)
from run import logger_command, machine, run_to_exit, say, verdict  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dead-drop-logger-bench"))
    args = parser.parse_args()
    log_dir = log_dir_for(dbgen.cached(args.cache, args.size), args.cache)
    files = sorted(log_dir.glob("messages-2*.json*"))
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    tool = logger_command()
    out_dir = Path(tempfile.mkdtemp(prefix="ddl-report-"))
    html = out_dir / "report.html"
    commands = {
        "search --count": [*tool, "search", "--count", "--log-dir", str(log_dir)],
        "stats": [*tool, "stats", "--log-dir", str(log_dir)],
        "stats --json": [*tool, "stats", "--json", "--log-dir", str(log_dir)],
        "report": [*tool, "report", "--log-dir", str(log_dir), "-o", str(html)],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(args.runs):
        for name, cmd in commands.items():
            outcome = run_to_exit(cmd)
            walls[name].append(outcome.wall)
            rss[name].append(outcome.rss_mb)
            say(f"run {run + 1}/{args.runs} {name}: {outcome.wall:.2f} s, {outcome.rss_mb:.0f} MB")
    wall = {name: statistics.median(values) for name, values in walls.items()}
    peak = {name: max(values) for name, values in rss.items()}
    size_mb = html.stat().st_size / 1e6
    html.unlink()
    out_dir.rmdir()
    stats_ratio = wall["stats"] / wall["search --count"]
    report_ratio = wall["report"] / wall["stats"]
    lines = [
        "# stats and report",
        "",
        f"Measured {machine()}.",
        f"{args.size:,} logged messages in {len(files)} day files ({megabytes:.0f} MB);"
        f" median of {args.runs} interleaved runs; peak RSS is the largest of the runs.",
        "",
        "| command | wall (s) | peak RSS (MB) |",
        "| --- | ---: | ---: |",
        *(f"| `{name}` | {wall[name]:.2f} | {peak[name]:.0f} |" for name in commands),
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
        f"| `stats` within 3x `search --count` | {stats_ratio:.2f}x |"
        f" {verdict(stats_ratio <= 3)} |",
        f"| `stats` peak RSS <= 128 MB | {peak['stats']:.0f} MB |"
        f" {verdict(peak['stats'] <= 128)} |",
        f"| `report` under 2x `stats` | {report_ratio:.2f}x | {verdict(report_ratio < 2)} |",
        f"| report file under 10 MB | {size_mb:.2f} MB | {verdict(size_mb < 10)} |",
    ]
    text = "\n".join(lines)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    (results / f"stats-report-{stamp}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
