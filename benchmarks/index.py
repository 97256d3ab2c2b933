"""The index's figures (docs/index.md): every reading command through the index, as a
whole process, against the scan and the anchors (wc, tail, ripgrep, DuckDB), in one run.

    .venv/bin/python benchmarks/index.py [--logs DIR] [--rounds 3] [--only NAME ...]

``--logs``: a log directory of 1,000,000 messages (benchmarks/reading.py exports one
into its cache); it is copied once into ``--work`` (the index is written there, never
into the shared cache). DuckDB is installed into a venv of its own under ``--work``
(``pip install duckdb``): a reference, never a dependency. Each round runs every
command once, through the index, by the scan (the index moved aside) and the anchors,
interleaved; medians are printed with ``uptime``'s load. ``--only`` times just the
questions whose name holds one of its words (the start-up targets: ``--only count
--only newest --only kubernetes --only agents --only thread``); ``--keep-index`` brings
an index already in ``--work`` up to date instead of rebuilding it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX = ".dead-drop-logger.index"
CMD = str(Path(sys.executable).with_name("dead-drop-logger"))


def load() -> str:
    return os.getloadavg().__repr__()


def timed(pipeline: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    done = subprocess.run(pipeline, shell=True, capture_output=True, check=False)
    return time.perf_counter() - start, done.stdout


def duck_python(work: Path) -> Path | None:
    venv = work / "duckdb-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "duckdb"], check=False)
    ok = subprocess.run([str(python), "-c", "import duckdb"], check=False).returncode == 0
    return python if ok else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--logs", type=Path, default=Path("/tmp/dead-drop-logger-bench/messages-1000000-v1-logs")
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/dead-drop-logger-bench-index"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="time only the questions whose name holds NAME (repeat for more)",
    )
    parser.add_argument(
        "--keep-index",
        action="store_true",
        help="bring the index in --work up to date rather than rebuild it",
    )
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    if not logs.exists():
        shutil.copytree(args.logs, logs, symlinks=True)
    files = sorted(str(p) for p in logs.glob("messages-*.json") if not p.is_symlink())
    quoted = " ".join(shlex.quote(f) for f in files)
    plain = sum(os.path.getsize(f) for f in files)
    subprocess.run(f"cat {quoted} > /dev/null", shell=True, check=True)  # warm the cache
    # The package's bytecode, as `pip install` writes it. With PYTHONDONTWRITEBYTECODE
    # set (as in the shells these figures were first taken in) and an editable install,
    # every start compiled again each of our modules it imported: 30-60 ms of each
    # whole-process figure that no installed copy pays.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dead_drop_logger")],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    duck_py = duck_python(work)
    log = shlex.quote(str(logs))
    print(f"load before build: {load()}")
    rebuild = "" if args.keep_index and (logs / INDEX).exists() else " --rebuild"
    took, out = timed(f"{CMD} index{rebuild} --log-dir {log}")
    size = os.path.getsize(logs / INDEX)
    print(f"index{rebuild}: {took:.1f} s; {out.decode().strip()}")
    print(f"index size {size / 1e6:.0f} MB = {100 * size / plain:.1f}% of {plain / 1e6:.0f} MB")
    ours = f"{CMD} search --log-dir {log}"

    def duckdb(sql: str) -> str:
        assert duck_py is not None
        where = repr(str(logs) + "/messages-*.json")
        script = f"import duckdb; print(duckdb.sql({sql!r}.replace('FILES', {where})).fetchall())"
        return f"{duck_py} -c {shlex.quote(script)}"

    def duck(label: str, sql: str) -> list[tuple[str, str]]:
        return [(label, duckdb(sql))] if duck_python_ok else []

    duck_python_ok = duck_py is not None
    every = "FROM read_ndjson_auto('FILES')"
    juno = '\'"from_agent":"juno"\''
    juno_search = f"{ours} --from juno --contains"
    rg = f"rg -N --no-filename -F {juno} {quoted} | rg -F"
    questions: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("search --count", f"{ours} --count", [
            ("wc -l", f"cat {quoted} | wc -l"),
            *duck("DuckDB count(*)", f"SELECT count(*) {every}"),
        ]),
        ("newest 100", f"{ours} --reverse -n 100 --json", [
            ("tail -n 100", f"tail -n 100 {shlex.quote(files[-1])}"),
        ]),
        ("--from juno --contains 'deploy merge'", f"{juno_search} 'deploy merge' --json", [
            ("ripgrep pipeline", f"{rg} 'deploy merge'"),
            *duck("DuckDB", f"SELECT count(*) {every} WHERE from_agent = 'juno'"
                            " AND contains(content, 'deploy merge')"),
        ]),
        ("--from juno --contains 'flaky test'", f"{juno_search} 'flaky test' --json", [
            ("ripgrep pipeline", f"{rg} 'flaky test'"),
        ]),
        ("--contains flaky -n 10", f"{ours} --contains flaky -n 10 --json", [
            ("ripgrep -m 10", f"rg -N --no-filename -m 10 -F flaky {shlex.quote(files[0])}"),
        ]),
        ("--contains kubernetes (no such word)", f"{ours} --contains kubernetes --count", [
            ("ripgrep", f"rg -c -F kubernetes {quoted} || true"),
        ]),
        ("--task T-5 --no-cc --count", f"{ours} --task T-5 --no-cc --count", []),
        ("stats --json", f"{CMD} stats --json --log-dir {log}", [
            *duck("DuckDB group-by", f"SELECT from_agent, count(*) {every} GROUP BY 1"),
        ]),
        ("agents", f"{CMD} agents --log-dir {log}", []),
        ("thread 500001", f"{CMD} thread 500001 --log-dir {log}", []),
        ("search --help", f"{CMD} search --help", [
            ("python -c pass", f"{sys.executable} -c pass"),
            ("python -c 'import click'", f"{sys.executable} -c 'import click'"),
        ]),
    ]  # fmt: skip
    if args.only:
        questions = [q for q in questions if any(word in q[0] for word in args.only)]
    times: dict[str, list[float]] = {}
    for _round in range(args.rounds):
        for name, command, anchors in questions:
            indexed, got = timed(command)
            os.rename(logs / INDEX, work / INDEX)
            try:
                scanned, want = timed(command)
            finally:
                os.rename(work / INDEX, logs / INDEX)
            assert got == want, name
            times.setdefault(f"{name} | index", []).append(indexed)
            times.setdefault(f"{name} | scan", []).append(scanned)
            for label, anchor in anchors:
                times.setdefault(f"{name} | {label}", []).append(timed(anchor)[0])
    print(f"load after: {load()}")
    print("| question | how | median s | runs |")
    print("|---|---|---|---|")
    for key, values in times.items():
        name, how = key.split(" | ")
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {how} | {statistics.median(values):.3f} | {runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
