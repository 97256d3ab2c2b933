"""serve's request time limit (--request-timeout), against the real server.

A query is made slow deterministically: a regex that backtracks catastrophically
(``^(a+)+$``) on lines whose content is 22 ``a`` and a ``!`` (about a quarter of a
second each, 400 of them: far past the test's own deadline without the limit), while
short contents of ``a`` match it at once. With a limit of 3 s (not less: a loaded
machine may pause serve for a good part of a second, and the quick request must not
be cut then; the slow lines still take far longer) the answer is a 503 with a JSON
error, the thread that read stops (the process goes idle) and the next request is
answered; a stream that had started ends with an error line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
from conftest import DEADLINE, wait_until
from serving import ServeProcess

from dead_drop_logger.logdir.layout import LOCK_FILE

SLOW_REGEX = "^(a+)+$"
SLOW = "a" * 22 + "!"  # each of these costs the regex about 2**22 steps
NO_DB = "/nonexistent/no.db"


def line(ident: int, day: str, content: str) -> bytes:
    message = {
        "id": ident, "from_agent": "juno", "to_agent": "vega", "content": content,
        "timestamp": f"{day}T10:{ident // 60 % 60:02d}:{ident % 60:02d}", "read_flag": 0,
        "is_cc": 0, "cc_original_to": None, "task_id": None, "reply_to": None,
    }  # fmt: skip
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def write_logs(log_dir: Path) -> list[bytes]:
    """Day 1: 2,000 quick matches (several 64 KB pieces), then 400 slow lines; day 2:
    slow lines only. The quick lines, returned."""
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / LOCK_FILE).touch()
    quick = [line(i, "2026-03-01", "aaaa") for i in range(1, 2001)]
    slow = [line(i, "2026-03-01", SLOW) for i in range(2001, 2401)]
    (log_dir / "messages-2026-03-01.json").write_bytes(b"".join(quick + slow))
    later = [line(i, "2026-03-02", SLOW) for i in range(2401, 2801)]
    (log_dir / "messages-2026-03-02.json").write_bytes(b"".join(later))
    return quick


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def goes_idle(pid: int) -> bool:
    """True once ``pid`` used less than a fifth of a core over half a second (a thread
    still running the regex keeps it at a whole core); fails after the deadline."""

    def idle() -> bool:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        return cpu_seconds(pid) - before < 0.1

    return bool(wait_until(idle, what="serve to go idle (the thread that read to stop)"))


def test_a_slow_query_is_a_503_and_its_thread_stops(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    write_logs(log_dir)
    # newest first: the 800 slow lines (200 s) come before any quick one
    with ServeProcess(log_dir, "--db", NO_DB, "--request-timeout", "3") as proc:
        assert proc.proc is not None
        url = proc.url + "v1/messages"
        got = httpx.get(url, params={"regex": SLOW_REGEX}, timeout=DEADLINE)
        assert got.status_code == 503, got.text
        assert got.headers["content-type"].startswith("application/json")
        error = got.json()["error"]
        assert error["status"] == 503
        assert "longer than 3 s" in error["message"] and "narrow it" in error["message"]
        assert goes_idle(proc.proc.pid), "the thread that read is still reading"
        # the next request is answered (and a fast one is not cut by the limit)
        page = httpx.get(url, params={"limit": 3, "regex": "^a+$"}, timeout=DEADLINE)
        assert page.status_code == 200, page.text
        assert len(page.json()["messages"]) == 3
        # NDJSON that has sent nothing yet is a JSON error too
        stream = httpx.get(
            url,
            params={"regex": SLOW_REGEX, "since": "2026-03-02", "format": "ndjson"},
            timeout=DEADLINE,
        )
        assert stream.status_code == 503, stream.text
        assert stream.json()["error"]["status"] == 503
        assert goes_idle(proc.proc.pid)


def test_a_stream_past_the_limit_ends_with_an_error_line(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    quick = write_logs(log_dir)
    # the stream must have started (its quick lines sent, a few ms) before the limit,
    # even on a loaded machine; the slow lines still take far longer (100 s)
    with ServeProcess(log_dir, "--db", NO_DB, "--request-timeout", "3") as proc:
        assert proc.proc is not None
        headers = {"Accept": "application/x-ndjson"}
        params = {"regex": SLOW_REGEX}
        got = httpx.get(proc.url + "v1/messages", params=params, headers=headers, timeout=DEADLINE)
        assert got.status_code == 200  # already started when the limit came
        *lines, last = got.content.splitlines(keepends=True)
        assert lines and b"".join(lines) == b"".join(quick[: len(lines)])
        assert all(one.startswith(b'{"id":') for one in lines)
        assert last.endswith(b"\n")
        error = json.loads(last)["error"]
        assert error["status"] == 503 and "longer than 3 s" in error["message"]
        assert goes_idle(proc.proc.pid)
