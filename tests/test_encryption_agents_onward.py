"""Agent-specific keys beyond ``search`` and ``thread`` (docs/encryption.md#agent-specific-keys):
every other reader shows a sealed content as ``search`` does, through the one rule of
crypt/agentkeys.py (``shown``, ``shown_line``), or hands it on as stored, on purpose.

- ``serve``: ``/v1/messages``, ``/v1/messages/ID``, ``/v1/threads/ID`` and the events
  carry each line opened when ``serve``'s identity opens it (``search --json``'s line),
  else the line with ``search``'s placeholder as its content, the marker kept;
- ``report`` (the file, and ``serve``'s ``/report``): a busiest thread's sealed root is
  previewed opened, or with the placeholder;

Real processes: the logger, ``serve`` on a loopback port read with urllib (the events
with the suite's SSE client), ``report``; identities from Debian's ``age-keygen``.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import httpx
import pytest
from conftest import (
    DEADLINE,
    agent_identity,
    agent_key_args,
)
from serving import ServeProcess, sse_events, take
from test_encryption_agents import MARKER, fill, logged, raw_lines, reader, readers_of

from dead_drop_logger.crypt.agentkeys import NO_IDENTITY, NOT_YOURS

ENC = "content_enc"


@pytest.fixture
def filled_db(server_db: Path) -> Path:
    fill(server_db)
    return server_db


@pytest.fixture
def sealed_logs(filled_db: Path, tmp_path: Path) -> Path:
    return logged(filled_db, tmp_path / "logs", *agent_key_args())


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}


def key(name: str) -> str:
    return str(agent_identity(name)[0])


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DEADLINE) as answer:
        body: bytes = answer.read()
        return body


def search_json(log_dir: Path, who: str | None) -> dict[int, bytes]:
    """``search --json``'s lines with ``who``'s key, by id."""
    out = reader(log_dir, "search", "--json", identity=who)
    return {json.loads(line)["id"]: line.encode() + b"\n" for line in out.splitlines()}


def expected_lines(log_dir: Path, who: str | None) -> dict[int, bytes]:
    """What ``serve`` must hand on with ``who``'s key: ``search --json``'s line where it
    opens; else the stored line with ``search``'s placeholder as content, marker kept."""
    stored = raw_lines(log_dir)
    opened = search_json(log_dir, who)
    found: dict[int, bytes] = {}
    for ident, line in stored.items():
        message = json.loads(line)
        if who is not None and who in readers_of(message):
            assert opened[ident] != line and ENC not in json.loads(opened[ident])
            found[ident] = opened[ident]
            continue
        assert opened[ident] == line  # (search --json: as stored)
        head, _sealed, tail = line.partition(json.dumps(message["content"]).encode())
        placeholder = NOT_YOURS if who is not None else NO_IDENTITY
        found[ident] = head + json.dumps(placeholder).encode() + tail
    return found


@pytest.mark.parametrize("who", [None, "juno", "escrow"])
def test_serve_shows_what_search_shows(sealed_logs: Path, who: str | None) -> None:
    log_dir = sealed_logs
    want = expected_lines(log_dir, who)
    if who is None:
        assert all(MARKER not in line.decode() for line in want.values())
    else:
        assert any(f"deploy key {MARKER} for vega".encode() in line for line in want.values())
    extra = [] if who is None else ["--identity", key(who)]
    with ServeProcess(log_dir, *extra) as served:
        # /v1/messages as NDJSON: every line, in search's order
        got = fetch(served.url + "v1/messages?format=ndjson").splitlines(keepends=True)
        assert got == [want[json.loads(line)["id"]] for line in got]
        assert sorted(json.loads(line)["id"] for line in got) == sorted(want)
        # the JSON page holds the same lines
        page = json.loads(fetch(served.url + "v1/messages?limit=1000&order=oldest"))
        assert [json.dumps(m, ensure_ascii=False) for m in page["messages"]] == [
            json.dumps(json.loads(line), ensure_ascii=False) for line in got
        ]
        # one message, and a thread's posts
        assert fetch(served.url + "v1/messages/1") + b"\n" == want[1]
        posts = json.loads(fetch(served.url + "v1/threads/2"))["posts"]
        assert posts and all(p["message"] == json.loads(want[p["message"]["id"]]) for p in posts)
        # the events, from the first line (an id before every line): the same bytes
        with (
            httpx.Client(timeout=DEADLINE) as client,
            client.stream("GET", served.url + "v1/events", headers={"Last-Event-ID": ":0"}) as r,
        ):
            events = take(sse_events(r), len(want))
        assert [e.data.encode() + b"\n" for e in events] == got


def test_report_previews_a_sealed_root_as_search_shows_it(sealed_logs: Path) -> None:
    log_dir = sealed_logs
    root = f"deploy key {MARKER} for vega"  # message 1, the root of thread 1 (2 replies to it)
    cases = {"escrow": root, "vega": root, "atlas": NOT_YOURS, None: NO_IDENTITY}
    for who, shown in cases.items():
        page = reader(log_dir, "report", "-o", "-", identity=who)
        assert "#1" in page and shown in page, who
        if shown != root:
            assert MARKER not in page, who
        assert "(first message not in the logs read)" not in page, who
    # serve's /report is the same page
    with ServeProcess(log_dir, "--identity", key("vega")) as served:
        assert root.encode() in fetch(served.url + "report")
    with ServeProcess(log_dir) as served:
        page = fetch(served.url + "report")
        assert NO_IDENTITY.encode() in page and MARKER.encode() not in page
