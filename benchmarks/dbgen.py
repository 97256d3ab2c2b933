"""Benchmark databases: the server's schema (tests/serverdb.py), filled fast and cached.

A database of N messages looks like the server's after N/2 sends: each send is a
message plus its CC row to the lead, ~400-byte contents (quotes, newlines, some
non-ASCII), local-time ISO timestamps spread evenly over 10 days. Rows go in through
large ``executemany`` transactions, so 1,000,000 messages take seconds, and the file
is cached by size (and generator version) so reruns start at once.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import serverdb  # the one fixture module for the server's schema

VERSION = 1
DAYS = 10
BATCH = 50_000

_TEXT = (
    "deploy the build to staging and check the logs before lunch, then report back with"
    ' "numbers" — latency, errors, café sales; résumé attached\n'
    "next: review PR #42 (tabs\tvs spaces) and ping orion about the flaky test 🚀 "
)
_WORDS = _TEXT.split(" ")


def _content(rng: random.Random, i: int) -> str:
    words: list[str] = [f"msg {i}:"]
    size = len(words[0])
    target = rng.randint(360, 440)
    while size < target:
        word = _WORDS[rng.randrange(len(_WORDS))]
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def _rows(count: int, start: dt.datetime) -> list[tuple[object, ...]]:
    """``count`` message rows: sends of one message plus one CC row to the lead."""
    rng = random.Random(count)
    agents = serverdb.AGENTS
    lead = serverdb.LEADS[0]
    step = dt.timedelta(seconds=DAYS * 86400 / max(count, 1))
    rows: list[tuple[object, ...]] = []
    send = 0
    while len(rows) < count:
        sender = agents[send % len(agents)]
        recipient = agents[(send + 1) % len(agents)] if send % 5 else "all"
        content = _content(rng, send)
        stamp = (start + step * len(rows)).isoformat()
        task = f"T-{send % 97}" if send % 3 == 0 else None
        reply = len(rows) if send % 4 == 1 else None
        rows.append((sender, recipient, content, stamp, rng.randint(0, 1), 0, None, task, reply))
        if len(rows) < count:
            rows.append((sender, lead, content, stamp, 0, 1, recipient, task, reply))
        send += 1
    return rows


def build(path: Path, count: int) -> None:
    """Create ``path`` with ``count`` messages (replacing any file there)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    serverdb.create(tmp)
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    start = dt.datetime.combine(dt.date.today() - dt.timedelta(days=DAYS + 1), dt.time())
    rows = _rows(count, start)
    sql = (
        "INSERT INTO messages (from_agent, to_agent, content, timestamp, read_flag, is_cc,"
        " cc_original_to, task_id, reply_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for first in range(0, count, BATCH):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[first : first + BATCH])
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)


def cached(cache_dir: Path, count: int) -> Path:
    """The cached database of ``count`` messages, built on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"messages-{count}-v{VERSION}.db"
    if not path.exists():
        print(f"generating {path} ({count:,} messages)...", file=sys.stderr, flush=True)
        build(path, count)
    return path


if __name__ == "__main__":
    print(cached(Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/ddl-bench"), int(sys.argv[1])))
