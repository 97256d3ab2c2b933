"""``dead-drop-logger serve``: the real server on a loopback port, a real HTTP client.

Every endpoint; ``/v1/messages`` against ``search --json`` byte for byte on the hostile
log set (escapes, U+2028, invalid UTF-8, BLOBs, gzipped days, size parts); JSON pages
walked by their cursor; errors as JSON (400, 404, 401); the token off 127.0.0.1; a
port in use; and nothing of the serve extra imported by the other commands."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
import pytest
from conftest import DEADLINE, HostileLogs, logger_command, run_command
from serving import ServeProcess

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

NO_DB = "/nonexistent/messages.db"  # the same for serve and the commands: no live fields

# (query parameters, the same filters as search options)
FILTERS: list[tuple[list[tuple[str, str]], list[str]]] = [
    ([], []),
    ([("from", "juno")], ["--from", "juno"]),
    (
        [("from", "juno"), ("from", "vega"), ("to", "vega")],
        ["--from", "juno", "--from", "vega", "--to", "vega"],
    ),
    ([("agent", "jünö")], ["--agent", "jünö"]),
    ([("task", "T-1")], ["--task", "T-1"]),
    ([("task", "juno")], ["--task", "juno"]),
    ([("contains", "deploy merge")], ["--contains", "deploy merge"]),
    ([("contains", 'e "deploy merge" \\ back')], ["--contains", 'e "deploy merge" \\ back']),
    ([("contains", "deploy merge"), ("ignore_case", "1")], ["--contains", "deploy merge", "-i"]),
    ([("regex", r"deploy\s+merge"), ("no_cc", "true")], ["--regex", r"deploy\s+merge", "--no-cc"]),
    (
        [("since", "2026-02-18"), ("until", "2026-02-20")],
        ["--since", "2026-02-18", "--until", "2026-02-20"],
    ),
    ([("contains", "sep\u2028and")], ["--contains", "sep\u2028and"]),
    ([("q", "--from juno -i DEPLOY")], ["--from", "juno", "-i", "--contains", "DEPLOY"]),
]  # fmt: skip


@pytest.fixture
def served(hostile_logs: HostileLogs) -> ServeProcess:
    with ServeProcess(hostile_logs.log_dir, "--db", NO_DB) as proc:
        yield proc


def search_json(log_dir: Path, *args: str) -> bytes:
    done = subprocess.run(
        [*logger_command(), "search", "--log-dir", str(log_dir), "--json", *args],
        capture_output=True,
        timeout=DEADLINE,
        env={k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")},
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def command_out(log_dir: Path, *args: str) -> bytes:
    done = subprocess.run(
        [*logger_command(), *args, "--log-dir", str(log_dir)],
        capture_output=True,
        timeout=DEADLINE,
        env={k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")},
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def get(url: str, **kw: object) -> httpx.Response:
    return httpx.get(url, timeout=DEADLINE, **kw)  # type: ignore[arg-type]


def lines_of(page: bytes) -> list[bytes]:
    """A JSON page's messages, each as the bytes of its stored line (with its newline),
    cut out of the page's own bytes (not parsed and serialised again)."""
    start = page.index(b'"messages":[') + len(b'"messages":[')
    end = page.index(b'],"keys":')
    body = page[start:end]
    if not body:
        return []
    found, depth, begin, in_string, escaped = [], 0, 0, False, False
    for i, byte in enumerate(body):
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            if depth == 0:
                begin = i
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                found.append(body[begin : i + 1] + b"\n")
    return found


@pytest.mark.parametrize(("params", "options"), FILTERS)
def test_ndjson_is_search_json_byte_for_byte(
    served: ServeProcess,
    hostile_logs: HostileLogs,
    params: list[tuple[str, str]],
    options: list[str],
) -> None:
    expected = search_json(hostile_logs.log_dir, *options)
    url = served.url + "v1/messages?" + urllib.parse.urlencode(params)
    got = get(url, headers={"Accept": "application/x-ndjson"})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/x-ndjson")
    assert got.content == expected
    # newest first with a limit: search --reverse --limit
    newest = get(url + "&format=ndjson&order=newest&limit=3")
    assert newest.content == search_json(hostile_logs.log_dir, *options, "--reverse", "-n", "3")


@pytest.mark.parametrize(("params", "options"), FILTERS[:3] + FILTERS[6:8] + FILTERS[10:])
def test_json_pages_walked_by_cursor_are_search_reversed(
    served: ServeProcess,
    hostile_logs: HostileLogs,
    params: list[tuple[str, str]],
    options: list[str],
) -> None:
    expected = search_json(hostile_logs.log_dir, *options, "--reverse")
    url: str | None = "v1/messages?" + urllib.parse.urlencode([*params, ("limit", "4")])
    walked: list[bytes] = []
    pages = 0
    while url is not None:
        got = get(served.url + url.lstrip("/"))
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/json"
        page = got.json()
        assert page["order"] == "newest"
        assert len(page["messages"]) == len(page["keys"]) <= 4
        walked += lines_of(got.content)
        url = page["next"]
        pages += 1
        assert pages < 100
    assert b"".join(walked) == expected
    # oldest first, the other way round
    oldest = get(
        served.url
        + "v1/messages?"
        + urllib.parse.urlencode([*params, ("order", "oldest"), ("limit", "10000")])
    )
    expected_oldest = search_json(hostile_logs.log_dir, *options)
    assert b"".join(lines_of(oldest.content)) == expected_oldest


def test_one_message_thread_agents_tasks_stats_spec_page(
    served: ServeProcess, hostile_logs: HostileLogs
) -> None:
    log_dir = hostile_logs.log_dir
    ids = hostile_logs.ids
    # a message by id: its stored line
    one = get(served.url + f"v1/messages/{ids['separators']}")
    stored = [
        line
        for line in search_json(log_dir, "--contains", "sep\u2028and").splitlines(keepends=True)
        if json.loads(line)["id"] == ids["separators"]
    ]
    assert one.status_code == 200 and one.content + b"\n" == stored[0]
    # the thread, as thread --json
    thread = get(
        served.url + f"v1/threads/{ids['nested']}", headers={"Accept": "application/x-ndjson"}
    )
    assert thread.content == command_out(log_dir, "thread", str(ids["nested"]), "--json")
    posts = get(served.url + f"v1/threads/{ids['nested']}").json()["posts"]
    assert [p["message"]["id"] for p in posts] == [
        json.loads(line)["id"] for line in thread.content.splitlines()
    ]
    assert posts[0]["depth"] == 0 and max(p["depth"] for p in posts) == 2
    # agents, tasks, stats: what the commands print
    agents = get(served.url + "v1/agents", headers={"Accept": "application/x-ndjson"})
    assert agents.content == command_out(log_dir, "agents", "--json", "--db", NO_DB)
    assert get(served.url + "v1/agents").json() == [
        json.loads(line) for line in agents.content.splitlines()
    ]
    tasks = get(served.url + "v1/tasks", headers={"Accept": "application/x-ndjson"})
    assert tasks.status_code == 200
    assert tasks.content == command_out(log_dir, "tasks", "--json")
    stats = get(served.url + "v1/stats?since=2026-02-18")
    assert stats.content + b"\n" == command_out(log_dir, "stats", "--json", "--since", "2026-02-18")
    # the description names every route
    spec = get(served.url + "v1/openapi.json").json()
    for path in ("/v1/messages", "/v1/messages/{room}/{id}", "/v1/threads/{id}", "/v1/agents",
                 "/v1/tasks", "/v1/stats", "/v1/events", "/v1/openapi.json"):  # fmt: skip
        assert path in spec["paths"]
    # the page, locked down
    page = get(served.url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert len(page.content) < 200_000
    # the full report, as `report` writes it, locked down too (Plotly inline)
    report = get(served.url + "report")
    assert report.status_code == 200 and b"<html" in report.content[:500].lower()
    assert "default-src 'none'" in report.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("v1/messages?since=someday", 400, "--since"),
        ("v1/messages?regex=(", 400, "--regex"),
        ("v1/messages?form=juno", 400, "unknown parameter 'form'"),
        ("v1/messages?limit=0", 400, "limit"),
        ("v1/messages?order=sideways", 400, "order"),
        ("v1/messages?since=2026-02-20&until=2026-02-19", 400, "not before"),
        ("v1/messages?cursor=:424242", 400, "cursor"),
        ("v1/messages?room=nosuch", 400, "no room 'nosuch'"),
        ("v1/messages?q=--frm+x", 400, "unknown option --frm"),
        ("v1/messages/424242", 404, "not in"),
        ("v1/messages/abc", 400, "not a message id"),
        ("v1/threads/424242", 404, "not in the logs"),
        ("v1/tasks/NOPE-1", 404, "NOPE-1"),
        ("v1/nothing", 404, ""),
        ("v1/events?regex=(", 400, "--regex"),
    ],
)
def test_errors_are_json(served: ServeProcess, path: str, status: int, words: str) -> None:
    got = get(served.url + path)
    assert got.status_code == status, got.text
    assert got.headers["content-type"] == "application/json"
    error = got.json()["error"]
    assert error["status"] == status and words in error["message"]


def test_requests_that_are_refused(served: ServeProcess) -> None:
    assert httpx.post(served.url + "v1/messages", timeout=DEADLINE).status_code == 405
    long = get(served.url + "v1/messages?contains=" + "x" * 9000)
    assert long.status_code == 414
    events = get(served.url + "v1/events", headers={"Last-Event-ID": "garbage"})
    assert events.status_code == 400 and "Last-Event-ID" in events.json()["error"]["message"]
    # no CORS unless configured
    page = get(served.url + "v1/agents", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in page.headers
    # a name of someone else's pointing here (DNS rebinding) is refused without a token
    rebound = get(served.url + "v1/agents", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 421


def test_cors_only_for_the_configured_origin(hostile_logs: HostileLogs) -> None:
    origin = "https://dash.example:8443"
    with ServeProcess(hostile_logs.log_dir, "--db", NO_DB, "--cors-origin", origin) as proc:
        allowed = get(proc.url + "v1/agents", headers={"Origin": origin})
        assert allowed.headers["access-control-allow-origin"] == origin
        other = get(proc.url + "v1/agents", headers={"Origin": "https://other.example"})
        assert "access-control-allow-origin" not in other.headers


def test_a_token_is_required_off_127_0_0_1(hostile_logs: HostileLogs, tmp_path: Path) -> None:
    token_file = tmp_path / "conf" / "token"
    args = ("--db", NO_DB, "--token-file", str(token_file))
    with ServeProcess(hostile_logs.log_dir, "--host", "127.0.0.2", *args) as proc:
        assert proc.url.startswith("http://127.0.0.2:")
        assert "token" in proc.stderr()
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        assert token not in proc.stderr()  # never logged
        for path in ("v1/messages", "v1/agents", "v1/events", "v1/openapi.json"):
            refused = get(proc.url + path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["status"] == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = get(proc.url + "v1/messages", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = get(proc.url + "v1/messages", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert get(proc.url + f"v1/agents?access_token={token}").status_code == 200
        assert get(proc.url).status_code == 200  # the page itself, which asks for it
    shown = run_command(
        "serve", "--show-token", "--token-file", str(token_file), env=dict(os.environ)
    )
    assert shown.returncode == 0 and shown.stdout.strip() == token


def test_show_token_makes_one_in_the_config_dir(no_user_config: Path) -> None:
    env = dict(os.environ)
    first = run_command("serve", "--show-token", env=env)
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert len(token) >= 40
    path = no_user_config.parent / "serve-token"
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run_command("serve", "--show-token", env=env).stdout.strip() == token


def test_port_in_use_and_bad_options_are_one_line_exit_2(hostile_logs: HostileLogs) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        where = str(hostile_logs.log_dir)
        done = run_command("serve", "--log-dir", where, "--port", str(port), env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in done.stderr
    for args in (["--port", "99999"], ["--port", "x"], ["--nope"], ["--log-dir", "/nonexistent/x"]):
        bad = run_command("serve", *args, env=env)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.count("\n") == 1 and "error" in bad.stderr, (args, bad.stderr)


def test_other_commands_import_nothing_of_serve(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from dead_drop_logger.control import cli\n"
        "try:\n"
        "    cli.cli(sys.argv[1:], prog_name='dead-drop-logger')\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'anyio')"
        " or m.startswith('dead_drop_logger.serve.')]\n"
        "print('LOADED:' + ','.join(bad))\n"
    )
    for args in (["run", "--help"], ["--help"], ["serve", "--help"], ["search", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=DEADLINE
        )
        assert done.returncode == 0, done.stderr
        loaded = [line for line in done.stdout.splitlines() if line.startswith("LOADED:")]
        assert loaded == ["LOADED:"], (args, loaded)
