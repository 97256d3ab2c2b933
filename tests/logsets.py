"""Log directories for the readers' tests (search, thread, agents, the log reader): a
server-faithful database of hostile messages, logged by the real logger into day files
that are partly gzipped and split into size parts.

The messages are what makes a byte prefilter go wrong if it is not exact: a name that
appears in another field or inside the content, escaped quotes, backslashes, slashes,
control characters, non-ASCII names, U+2028/U+2029, invalid UTF-8 (stored as TEXT), a
BLOB content, replies (nested, and to an id never logged), and a timestamp the logger
cannot date (filed under the logger's today).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import serverdb

GZ_DAYS = ("2026-02-17", "2026-02-18")  # gzipped by the second logger run
PLAIN_DAYS = ("2026-02-19", "2026-02-20")
MISSING_REPLY = 99999
MAX_BYTES = "2KB"


def fill(db: Path) -> dict[str, int]:
    """Write the hostile messages; returns the ids of the ones tests refer to by name."""
    conn = serverdb.connect(db)
    ids: dict[str, int] = {}

    def send(name: str, sender: str, to: str, content: object, when: str, **kw: object) -> None:
        ids[name] = serverdb.send(conn, sender, to, content, timestamp=when, **kw)[0]

    send("root", "juno", "vega", "deploy merge started", "2026-02-17T09:00:00", task_id="T-1")
    send("ack", "vega", "juno", "ack: deploy merge", "2026-02-17T09:05:00", reply_to=ids["root"])
    send("standup", "atlas", "all", "standup in 5", "2026-02-17T10:00:00")
    send("quoted", "orion", "atlas", 'quote "deploy merge" \\ back / slash', "2026-02-17T23:59:59")
    send("fake", "vega", "atlas", 'fake: "from_agent":"juno" deploy merge', "2026-02-18T08:00:00")
    send("task_named", "atlas", "juno", "juno is the task", "2026-02-18T09:00:00", task_id="juno")
    send("unicode", "jünö", "名前", "café deploy merge ünïcödé", "2026-02-18T12:00:00")
    send("controls", "juno", "orion", "line1\nline2\ttab \x01 ctrl", "2026-02-18T13:00:00")
    send("separators", "juno", "vega", "sep\u2028and\u2029 deploy merge", "2026-02-18T14:00:00")
    send("blob", "juno", "vega", b"deploy merge", "2026-02-19T08:00:00")
    send(
        "invalid",
        "juno",
        "vega",
        b"deploy merge\xff",
        "2026-02-19T08:30:00",
        bytes_as_text=True,
    )
    send("upper", "juno", "atlas", "Deploy Merge upper", "2026-02-19T09:00:00")
    send(
        "nested",
        "orion",
        "vega",
        "and a reply to the ack",
        "2026-02-19T09:10:00",
        reply_to=ids["ack"],
    )
    start = dt.datetime(2026, 2, 19, 10, 0)
    for i in range(30):
        sender = serverdb.AGENTS[i % len(serverdb.AGENTS)]
        to = serverdb.AGENTS[(i + 1) % len(serverdb.AGENTS)]
        when = (start + dt.timedelta(minutes=i)).isoformat()
        send(f"filler{i}", sender, to, f"filler {i} " + "x" * 100, when)
    send(
        "done",
        "juno",
        "vega",
        "deploy merge done",
        "2026-02-20T00:00:00",
        task_id="T-1",
        reply_to=ids["root"],
    )
    send(
        "orphan",
        "vega",
        "juno",
        "reply to a message never logged",
        "2026-02-20T08:00:00",
        reply_to=MISSING_REPLY,
    )
    send("escaped_u", "orion", "juno", "literal \\u2028 and \\/ text", "2026-02-20T09:00:00")
    send("spaced", "juno", "orion", "late deploy merge", "2026-02-20 23:30:00")
    send("undated", "atlas", "vega", "no usable time", "garbage")
    conn.close()
    return ids
