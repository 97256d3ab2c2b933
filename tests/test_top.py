"""``top``: the team at a glance, from real server databases (tests/serverdb.py).

The frame is plain data, checked here without a terminal and with a chosen "now";
``top --once`` and ``agents --json`` are checked as real processes with the clock
pinned through ``DEAD_DROP_TEST_NOW`` (read only by dead_drop_logger/clock.py); the
live view is tried in a real terminal: a tmux pane, its screen captured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import serverdb
from conftest import log_with_real_logger, logger_command, run_command, wait_until

from dead_drop_logger.clock import TEST_NOW
from dead_drop_logger.read.teamview import (
    AgentView,
    LogFacts,
    RoomRows,
    build_frame,
    render,
    width_of,
)
from dead_drop_logger.server import health

T0 = dt.datetime(2026, 3, 2, 10, 0, 0)  # a Monday morning, server wall time


def stamp(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def team_db(path: Path) -> Path:
    """A team as the server stores it: a lead and three agents, tasks in flight."""
    serverdb.create(path)
    conn = serverdb.connect(path)
    for name, role in (("lead", "lead"), ("juno", "builder"), ("atlas", "tester"),
                       ("vega", "coder")):  # fmt: skip
        serverdb.register(conn, name, role=role, now=stamp(0))
    serverdb.ping(conn, "lead", now=stamp(590))
    serverdb.ping(conn, "juno", now=stamp(500))
    serverdb.ping(conn, "atlas", now=stamp(100))  # vega never sends a heartbeat
    task = serverdb.create_task(conn, "lead", "Fix the deploy", assign_to="juno", now=stamp(60))
    serverdb.update_task(conn, "juno", task, "in_progress", now=stamp(120))
    serverdb.set_status(conn, "juno", "working on TASK-001", now=stamp(121))
    done = serverdb.create_task(conn, "lead", "Old work", assign_to="atlas", now=stamp(10))
    serverdb.update_task(conn, "atlas", done, "in_progress", now=stamp(11))
    serverdb.update_task(conn, "atlas", done, "review", now=stamp(12))
    serverdb.update_task(conn, "lead", done, "completed", now=stamp(13))
    serverdb.create_task(conn, "lead", "Write the docs", now=stamp(200))  # pending
    serverdb.send(conn, "atlas", "juno", "can you look at the logs?", timestamp=stamp(300))
    conn.close()
    return path


def rows_of(db: Path) -> RoomRows:
    conn = serverdb.connect(db)
    conn.row_factory = lambda cur, row: dict(zip([d[0] for d in cur.description], row, strict=True))
    agents = conn.execute("SELECT * FROM agents").fetchall()
    tasks = conn.execute("SELECT * FROM tasks WHERE status != 'completed'").fetchall()
    conn.close()
    return RoomRows(None, agents, tasks)


def by_name(agents: list[AgentView]) -> dict[str, AgentView]:
    return {a.agent: a for a in agents}


# -- the frame as data --------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [(0, "healthy"), (119.9, "healthy"), (120, "stale"), (599.9, "stale"), (600, "dead")],
)
def test_health_follows_the_servers_who_thresholds(after: float, expected: str) -> None:
    assert health(stamp(0), T0 + dt.timedelta(seconds=after)) == expected


def test_no_or_unreadable_heartbeat_is_unknown_never_running() -> None:
    assert health(None, T0) == "unknown"
    assert health("yesterday-ish", T0) == "unknown"


def test_frame_rows_from_the_databases_rows(tmp_path: Path) -> None:
    rows = rows_of(team_db(tmp_path / "messages.db"))
    frame = build_frame([rows], None, T0 + dt.timedelta(seconds=620))
    agents = by_name(frame.agents)
    assert [a.agent for a in frame.agents] == ["atlas", "juno", "lead", "vega"]
    assert agents["lead"].health == "healthy"  # heartbeat 30 s ago
    assert agents["juno"].health == "stale" and agents["juno"].heartbeat_age == 120  # just
    assert agents["atlas"].health == "stale"  # 520 s ago
    assert agents["vega"].health == "unknown" and agents["vega"].heartbeat_age is None
    assert (agents["juno"].task, agents["juno"].task_status) == ("TASK-001", "in_progress")
    assert agents["juno"].status == "working on TASK-001"
    assert agents["atlas"].task is None  # its task is completed: not open
    assert [(t.task, t.status) for t in frame.tasks or []] == [
        ("TASK-003", "pending"),
        ("TASK-001", "in_progress"),
    ]
    assert agents["juno"].unanswered is None  # no logs read: unknown, not zero
    later = build_frame([rows], None, T0 + dt.timedelta(seconds=1100))
    assert by_name(later.agents)["atlas"].health == "dead"
    assert by_name(later.agents)["juno"].health == "dead"  # 600 s: dead from then on


def test_log_facts_use_the_response_rule() -> None:
    facts = LogFacts()

    def msg(i: int, a: str, b: str, at: float, reply_to: int | None = None, cc: int = 0) -> None:
        facts.add({"id": i, "from_agent": a, "to_agent": b, "timestamp": stamp(at),
                   "is_cc": cc, "reply_to": reply_to})  # fmt: skip

    msg(1, "atlas", "juno", 0)
    msg(2, "atlas", "juno", 60)
    msg(3, "atlas", "lead", 60, cc=1)  # the server's CC copy: never anyone's message
    msg(4, "lead", "juno", 100)
    now = T0 + dt.timedelta(seconds=400)
    assert facts.unanswered(None, "juno", now) == (3, 400)
    assert facts.unanswered(None, "lead", now) == (0, None)
    msg(5, "juno", "all", 200, reply_to=4)  # a broadcast replying to #4 answers it
    assert facts.unanswered(None, "juno", now) == (2, 400)
    msg(6, "juno", "atlas", 300)  # the next direct message to the asker answers both
    assert facts.unanswered(None, "juno", now) == (0, None)
    assert facts.last_message(None, "juno") == (T0 + dt.timedelta(seconds=300), "atlas")
    assert facts.last_message(None, "lead") == (T0 + dt.timedelta(seconds=100), "juno")
    a_day_later = T0 + dt.timedelta(days=1, seconds=1)
    msg(7, "vega", "lead", 0)
    assert facts.unanswered(None, "lead", a_day_later) == (0, None)  # past the 24 hours


def test_render_fits_80_columns_and_colours_only_when_asked(tmp_path: Path) -> None:
    rows = rows_of(team_db(tmp_path / "messages.db"))
    rows.agents[1]["status"] = "a very long status\nwith a newline \x1b[31m and an escape " * 3  # type: ignore[index]
    frame = build_frame([rows], LogFacts(), T0 + dt.timedelta(seconds=620))
    plain = render(frame, 80, colour=False)
    assert all(width_of(line) <= 80 for line in plain), plain
    assert not any("\x1b" in line or "\n" in line for line in plain)
    assert plain[1].split() == ["AGENT", "HEALTH", "BEAT", "TASK", "LAST", "MSG", "WAITING",
                                "STATUS"]  # fmt: skip
    assert "OPEN TASKS (2)" in plain
    coloured = render(frame, 80, colour=True)
    assert any("\x1b[1;31m" not in line and "\x1b[33mstale" in line for line in coloured)
    no_tasks = build_frame([RoomRows(None, rows.agents, None)], None, T0)
    assert not any(line.startswith("OPEN TASKS") for line in render(no_tasks, 80, False))


# -- the real command -----------------------------------------------------------------


def top_once(
    env: dict[str, str], *args: str, now: str | None = None, columns: int = 80
) -> subprocess.CompletedProcess[str]:
    env = {**env, "COLUMNS": str(columns)}
    if now is not None:
        env[TEST_NOW] = now
    return run_command("top", "--once", *args, env=env)


def agent_line(output: str, name: str) -> list[str]:
    found = [line.split() for line in output.splitlines() if line.startswith(name + " ")]
    assert len(found) == 1, output
    return found[0]


def test_an_agent_that_stops_its_heartbeat_turns_stale_then_dead(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    db = tmp_path / "messages.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    serverdb.register(conn, "juno", now=stamp(0))
    serverdb.ping(conn, "juno", now=stamp(0))
    conn.close()
    log_dir = tmp_path / "logs"
    log_dir.mkdir()  # the logger has not logged a message yet
    where = ("--db", str(db), "--log-dir", str(log_dir))
    for after, expected in ((119, "healthy"), (120, "stale"), (599, "stale"), (600, "dead")):
        now = stamp(after)
        result = top_once(home_env, *where, now=now)
        assert result.returncode == 0, result.stderr
        assert agent_line(result.stdout, "juno")[1] == expected, result.stdout
        env = {**home_env, TEST_NOW: now}
        listed = run_command("agents", "--json", *where, env=env)
        row = json.loads(listed.stdout)
        assert (row["agent"], row["health"], row["heartbeat_age"]) == ("juno", expected, after)
        assert (row["sent"], row["status"]) == (0, "waiting for work")  # silent, yet listed


def test_top_once_shows_task_last_message_and_waiting(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    db = team_db(tmp_path / "messages.db")
    log_dir = tmp_path / "logs"
    log_with_real_logger(db, log_dir)
    result = top_once(home_env, "--db", str(db), "--log-dir", str(log_dir), now=stamp(900))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    juno = agent_line(out, "juno")
    # heartbeat at 500 s, now 900 s: 6m 40s ago, stale
    assert juno[:5] == ["juno", "stale", "6m", "TASK-001", "in_progress"]
    # its last message: the server's "Status: assigned → in_progress" to the lead, at 120 s
    assert juno[5:7] == ["13m", "→lead"]
    # atlas's question at 300 s waits for juno's answer: 1 message, 10m
    assert juno[7:9] == ["1", "10m"]
    assert juno[9:] == ["working", "on", "TASK-001"]
    assert agent_line(out, "vega")[1:4] == ["unknown", "-", "-"]
    assert "OPEN TASKS (2)" in out
    assert re.search(r"^pending +1  TASK-003 - 11m$", out, re.M), out
    assert re.search(r"^in_progress +1  TASK-001 juno 13m$", out, re.M), out
    assert all(width_of(line) <= 80 for line in out.splitlines())
    assert "\x1b" not in out  # no colour into a pipe
    env = {**home_env, TEST_NOW: stamp(900)}
    listed = run_command("agents", "--json", "--db", str(db), "--log-dir", str(log_dir), env=env)
    rows = {row["agent"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert {k: rows["juno"][k] for k in AgentView.FIELDS} == {
        "health": "stale",
        "heartbeat_age": 400,
        "status": "working on TASK-001",
        "task": "TASK-001",
        "task_status": "in_progress",
        "last_message_age": 780,
        "last_message_to": "lead",
        "unanswered": 1,
        "oldest_unanswered_wait": 600,
    }


def test_without_a_tasks_table_there_is_no_task_section(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    db = tmp_path / "messages.db"
    serverdb.create(db)
    conn = serverdb.connect(db)
    conn.execute("DROP TABLE tasks")  # a server from before tasks
    serverdb.register(conn, "juno", now=stamp(0))
    conn.close()
    result = top_once(home_env, "--db", str(db), "--log-dir", str(tmp_path), now=stamp(5))
    assert result.returncode == 0, result.stderr
    assert "TASK" not in result.stdout.replace("TASK ", "")  # only the column title
    assert "OPEN TASKS" not in result.stdout
    assert agent_line(result.stdout, "juno")[1] == "unknown"


def test_top_never_writes_the_database(tmp_path: Path, home_env: dict[str, str]) -> None:
    db = team_db(tmp_path / "messages.db")
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    os.chmod(db, 0o444)  # and a database it may not write is no obstacle
    result = top_once(home_env, "--db", str(db), "--log-dir", str(tmp_path), now=stamp(5))
    assert result.returncode == 0, result.stderr
    assert agent_line(result.stdout, "juno")[1] == "healthy"
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    wal = tmp_path / "messages.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_missing_database_is_said_and_exit_1(tmp_path: Path, home_env: dict[str, str]) -> None:
    missing = ("--db", str(tmp_path / "nope.db"), "--log-dir", str(tmp_path))
    result = top_once(home_env, *missing, columns=500)
    assert result.returncode == 1
    assert f"! no database at {tmp_path / 'nope.db'} (yet)" in result.stdout
    assert "Traceback" not in result.stderr


def test_live_top_into_a_pipe_is_one_line_and_exit_2(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    result = run_command("top", "--db", str(tmp_path / "x.db"), env=home_env)
    assert result.returncode == 2
    assert result.stderr == (
        "dead-drop-logger: error: top redraws a terminal; use --once for one frame into a"
        " pipe or file\n"
    )


def test_rooms_each_have_their_rows(tmp_path: Path, home_env: dict[str, str]) -> None:
    rooms = tmp_path / "rooms"
    for name in ("ops", "web"):
        db = serverdb.room_db(rooms, name)
        db.parent.mkdir(parents=True)
        serverdb.create(db)
        conn = serverdb.connect(db)
        serverdb.register(conn, "lead", role="lead", now=stamp(0))
        serverdb.ping(conn, "lead", now=stamp(0 if name == "ops" else 100))
        conn.close()
    result = top_once(home_env, "--rooms-dir", str(rooms), "--log-dir", str(tmp_path / "logs"),
                      now=stamp(150))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line.split()[:3] for line in result.stdout.splitlines() if line.startswith("lead")]
    assert lines == [["lead", "ops", "stale"], ["lead", "web", "healthy"]]


# -- in a real terminal -------------------------------------------------------------

TMUX = shutil.which("tmux")


class Pane:
    """One tmux pane of 80 x 24 running a shell, on a server of its own."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.socket = tmp_path / "tmux.sock"
        self.env = {k: v for k, v in env.items() if k not in ("TMUX", "COLUMNS", "LINES")}
        self.env["TERM"] = "xterm-256color"
        self.tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", "sh")

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        command = [TMUX, "-f", "/dev/null", "-S", str(self.socket), *args]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "top", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "top")

    def close(self) -> None:
        subprocess.run([TMUX or "tmux", "-S", str(self.socket), "kill-server"], env=self.env,
                       capture_output=True)  # fmt: skip


@pytest.mark.skipif(TMUX is None, reason="needs tmux (.ci/run installs it)")
@pytest.mark.parametrize("quit_key", ["q", "C-c"])
def test_top_live_in_a_tmux_pane(tmp_path: Path, home_env: dict[str, str], quit_key: str) -> None:
    db = team_db(tmp_path / "messages.db")
    log_dir = tmp_path / "logs"
    log_with_real_logger(db, log_dir)
    stty = tmp_path / "stty"
    top = [*logger_command(), "top", "--db", str(db), "--log-dir", str(log_dir)]
    pane = Pane(tmp_path, home_env)
    try:
        pane.type(f"{shlex.join(top)}; echo top-exited-$?; stty -a > {stty}", "Enter")
        wait_until(lambda: "working on TASK-001" in pane.screen(), what="top's first frame")
        first = pane.screen()
        assert first.startswith("top  ") and "q quits" in first and "AGENT" in first
        assert "OPEN TASKS (2)" in first
        dead = [line for line in pane.tmux("capture-pane", "-p", "-e", "-t", "top").splitlines()
                if line.startswith("juno ")]  # fmt: skip
        assert "\x1b[" in dead[0] and "31m" in dead[0]  # its heartbeat is long past: red
        # A writer commits: juno's status changes, and so does its row.
        conn = serverdb.connect(db)
        serverdb.set_status(conn, "juno", "shipping the fix")
        conn.close()
        wait_until(lambda: "shipping the fix" in pane.screen(), what="the row redrawn")
        frame = pane.screen()
        assert "working on TASK-001" not in frame
        rows = [line for line in frame.splitlines() if line.startswith("juno ")]
        assert len(rows) == 1 and rows[0].endswith("shipping the fix"), frame
        assert all(len(line) <= 80 for line in frame.splitlines())
        pane.type(quit_key)
        wait_until(lambda: "top-exited-0" in pane.screen(), what="top to quit")
        after = pane.screen()
        assert "AGENT" not in after  # the alternate screen is gone: the shell's is back
        wait_until(stty.exists, what="stty's report")
        modes = wait_until(lambda: stty.read_text(), what="stty's report").split()
        assert "icanon" in modes and "echo" in modes  # the terminal restored, not cbreak
    finally:
        pane.close()
