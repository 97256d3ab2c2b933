"""The task log's readers: ``read/tasklog.py`` (rooms, .gz, parts, corrupt lines, gaps),
the ``tasks`` command, a window and an injected clock in the task figures, and the
report's task charts as plain data.

Task lines are written exactly as the logger writes them (tests/taskscript.py).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from click.testing import CliRunner
from conftest import run_command
from taskscript import TaskLog, task_line

from dead_drop_logger.control.cli import cli
from dead_drop_logger.encoding import encode_row
from dead_drop_logger.logdir.layout import LOCK_FILE
from dead_drop_logger.read import taskcharts, taskstats
from dead_drop_logger.read.logread import EVERYTHING, LogDir, Window
from dead_drop_logger.read.tasklog import histories, read_agents, read_tasks

MESSAGE_COLUMNS = ("id", "from_agent", "to_agent", "content", "timestamp", "read_flag",
                   "is_cc", "cc_original_to", "task_id", "reply_to")  # fmt: skip


def write_messages(log_dir: Path, *rows: tuple[Any, ...]) -> None:
    """Message lines as the logger writes them, into their day files."""
    for row in rows:
        types = ["integer" if isinstance(v, int) else "text" for v in row]
        line = encode_row(MESSAGE_COLUMNS, row, types)
        with open(log_dir / f"messages-{row[4][:10]}.json", "ab") as out:
            out.write(line)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def small(log_dir: Path) -> None:
    log = TaskLog(log_dir)
    log.create("TASK-001", "2026-03-02T09:00:00", title="login", project="web",
               assigned_to="juno", role_hat="builder")  # fmt: skip
    log.move("TASK-001", "in_progress", "2026-03-02T10:00:00")
    log.move("TASK-001", "review", "2026-03-02T11:00:00")
    log.move("TASK-001", "in_progress", "2026-03-02T12:00:00")  # rework
    log.create("TASK-002", "2026-03-03T09:00:00", title="api", project="api")
    write_messages(
        log_dir,
        (1, "ada", "juno", "[TASK-001] TASK ASSIGNED: login", "2026-03-02T09:00:00", 0, 0,
         None, "TASK-001", None),
        (2, "juno", "ada", "[TASK-001] Status: assigned → in_progress", "2026-03-02T10:00:00",
         0, 0, None, "TASK-001", None),
        (3, "ada", "juno", "[TASK-001] Status: review → in_progress", "2026-03-02T12:00:00",
         0, 0, None, "TASK-001", None),
        (4, "vega", "juno", "unrelated", "2026-03-02T12:30:00", 0, 0, None, None, None),
    )  # fmt: skip


def test_message_readers_never_read_task_or_agent_lines(tmp_path: Path) -> None:
    small(tmp_path)
    (tmp_path / "agents-2026-03-02.json").write_text('{"agent":"juno","event":"registered"}\n')
    data = json.loads(invoke("stats", "--log-dir", str(tmp_path), "--json").output)
    assert data["totals"]["messages"] == 4
    result = invoke("search", "--log-dir", str(tmp_path), "--json")
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == [1, 2, 3, 4]
    assert result.exit_code == 0 and result.stderr_bytes in (None, b"")


def test_task_lines_of_rooms_gzip_and_parts(tmp_path: Path) -> None:
    small(tmp_path)
    room = tmp_path / "ops"
    TaskLog(room).create("TASK-001", "2026-03-02T08:00:00", title="ops one")
    (room / LOCK_FILE).touch()  # a directory a logger writes to: a room
    # a day compressed, and a later part of another day
    day = tmp_path / "tasks-2026-03-03.json"
    with gzip.open(tmp_path / "tasks-2026-03-03.json.gz", "wb") as packed:
        packed.write(day.read_bytes())
    day.unlink()
    part = task_line("TASK-002", "pending", "pending", "2026-03-03T10:00:00",
                     {"id": "TASK-002", "title": "api v2", "status": "pending"})  # fmt: skip
    (tmp_path / "tasks-2026-03-03.1.json").write_bytes(part)
    found = histories(read_tasks([LogDir(tmp_path), LogDir(room, "ops")]))
    assert list(found) == [(None, "TASK-001"), ("ops", "TASK-001"), (None, "TASK-002")]
    assert found[(None, "TASK-002")].row["title"] == "api v2"  # the part, after the .gz
    assert found[("ops", "TASK-001")].row["title"] == "ops one"
    result = invoke("tasks", "--log-dir", str(tmp_path), "--json")
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert sorted((r["room"] or "", r["task"]) for r in rows) == [
        ("", "TASK-001"), ("", "TASK-002"), ("ops", "TASK-001")
    ]  # fmt: skip
    result = invoke("tasks", "--log-dir", str(tmp_path), "--room", "ops", "--json")
    assert [json.loads(line)["room"] for line in result.output.splitlines()] == ["ops"]


def test_agent_lines_of_a_room_in_file_order(tmp_path: Path) -> None:
    room = tmp_path / "ops"
    room.mkdir()
    (room / LOCK_FILE).touch()
    row = '{"name":"juno","registered_at":"2026-03-02T09:00:00","status":"waiting for work"}'
    lines = [
        '{"agent":"juno","event":"registered","at":"2026-03-02T09:00:00","health":null,'
        f'"status":"waiting for work","from":null,"row":{row}}}',
        '{"agent":"juno","event":"health","at":"2026-03-02T09:02:00","health":"stale",'
        f'"status":"waiting for work","from":"healthy","row":{row}}}',
        '{"no agent": 1}',
    ]
    (room / "agents-2026-03-02.json").write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "agents-2026-03-01.json.gz", "wt") as packed:
        packed.write(lines[0].replace("03-02", "03-01") + "\n")
    found = list(read_agents([LogDir(tmp_path), LogDir(room, "ops")]))
    assert [(a.room, a.agent, a.event, a.health, a.before) for a in found] == [
        (None, "juno", "registered", None, None),
        ("ops", "juno", "registered", None, None),
        ("ops", "juno", "health", "stale", "healthy"),
    ]
    assert found[2].when == dt.datetime(2026, 3, 2, 9, 2)
    assert found[1].row["status"] == "waiting for work"


def test_a_gap_with_the_missed_states_counts_them(tmp_path: Path) -> None:
    log = TaskLog(tmp_path)
    log.create("T", "2026-03-02T09:00:00", title="t", assigned_to="juno")
    log.move("T", "in_progress", "2026-03-02T10:00:00")
    # the logger saw in_progress, then in_progress again: review and a rework between
    log.move("T", "in_progress", "2026-03-02T15:00:00", via=("review",), gap=True)
    log.move("T", "completed", "2026-03-02T17:00:00", via=("review",), gap=True)
    [history] = histories(read_tasks([LogDir(tmp_path)])).values()
    steps = [(t.before, t.after, t.gap) for t in history.transitions]
    assert steps == [
        (None, "assigned", False),
        ("assigned", "in_progress", False),
        ("in_progress", "review", True),
        ("review", "in_progress", True),
        ("in_progress", "review", True),
        ("review", "completed", True),
    ]
    f = taskstats.compute(histories(read_tasks([LogDir(tmp_path)])).values(), EVERYTHING,
                          dt.datetime(2026, 3, 3))  # fmt: skip
    assert (f.reworks, f.review_rejections, f.gaps) == (1, 1, 1)
    assert f.first_pass_yield == taskstats.Rate(0.0, 1)
    assert f.time_in_status["review"].n == 0  # the missed states have no known time


def test_a_corrupt_task_line_is_skipped_and_warned_of(tmp_path: Path) -> None:
    small(tmp_path)
    with open(tmp_path / "tasks-2026-03-02.json", "ab") as out:
        out.write(b'{"task": 12}\nnot json\n')
    result = run_command("tasks", "--log-dir", str(tmp_path), env=dict(os.environ))
    assert result.returncode == 0
    assert "skipped 2 corrupt lines" in result.stderr
    assert "TASK-001" in result.stdout


def test_tasks_lists_and_filters(tmp_path: Path) -> None:
    now = dt.datetime.now().replace(microsecond=0)
    log = TaskLog(tmp_path)
    stamp = lambda hours: (now - dt.timedelta(hours=hours)).isoformat()  # noqa: E731
    log.create("A", stamp(80), title="old one", project="web", assigned_to="juno")
    log.move("A", "in_progress", stamp(72))  # in progress for 3 days
    log.create("B", stamp(5), title="new one", project="api", assigned_to="vega")
    log.move("B", "in_progress", stamp(3))  # for 3 hours
    log.create("C", stamp(50), title="unassigned", project="web")  # pending 50 h
    log.create("D", stamp(200), title="done long ago", project="web", assigned_to="juno")
    log.move("D", "in_progress", stamp(199))
    log.move("D", "failed", stamp(198))  # failed for 198 h: listed after the open ones
    where = ["--log-dir", str(tmp_path)]

    def listed(*args: str) -> list[str]:
        result = invoke("tasks", *where, "--json", *args)
        assert result.exit_code in (0, 1), result.output
        return [json.loads(line)["task"] for line in result.stdout.splitlines()]

    assert listed() == ["A", "C", "B", "D"]  # open first, the longest in their status first
    assert listed("--status", "in_progress") == ["A", "B"]
    assert listed("--agent", "vega") == ["B"]
    assert listed("--project", "web") == ["A", "C", "D"]
    assert listed("--stale", "2d") == ["A", "C", "D"]
    assert listed("--status", "failed") == ["D"]
    assert listed("--stale", "2d", "--status", "in_progress") == ["A"]
    assert listed("--since", "4h") == ["B"]  # a transition in the last 4 hours
    assert listed("--status", "review") == []
    text = invoke("tasks", *where).output.splitlines()
    assert text[0].split() == ["task", "status", "assignee", "in", "status", "reworks",
                               "last", "transition", "title"]  # fmt: skip
    assert text[1].split()[:5] == ["A", "in_progress", "juno", "3d", "00h"]
    result = invoke("tasks", *where, "--status", "review")
    assert result.exit_code == 1 and "no tasks recorded in" in result.output


def test_stale_takes_a_duration_or_is_a_usage_error(tmp_path: Path) -> None:
    result = run_command("tasks", "--log-dir", str(tmp_path), "--stale", "soon",
                         env=dict(os.environ))  # fmt: skip
    assert result.returncode == 2
    assert "'soon' is not a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_task_history_with_who_and_its_messages(tmp_path: Path) -> None:
    small(tmp_path)
    result = invoke("tasks", "--log-dir", str(tmp_path), "TASK-001", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert [(t["from"], t["to"], t["at"][11:16], t["by"]) for t in found["transitions"]] == [
        (None, "assigned", "09:00", "ada"),  # the TASK ASSIGNED message's sender
        ("assigned", "in_progress", "10:00", "juno"),  # the Status message's sender
        ("in_progress", "review", "11:00", "juno"),  # the assignee (no message logged)
        ("review", "in_progress", "12:00", "ada"),  # the Status message's sender
    ]
    assert [m["id"] for m in found["messages"]] == [1, 2, 3]
    other = json.loads(invoke("tasks", "--log-dir", str(tmp_path), "TASK-002", "--json").stdout)
    assert [(t["to"], t["by"]) for t in other["transitions"]] == [("pending", "ada")]  # created_by
    assert other["messages"] == []
    text = invoke("tasks", "--log-dir", str(tmp_path), "TASK-001").output
    assert "TASK-001: login" in text and "rework" in text and "Messages (3)" in text
    missing = invoke("tasks", "--log-dir", str(tmp_path), "TASK-404")
    assert missing.exit_code == 1 and "no task TASK-404 recorded" in missing.output


def test_a_window_counts_what_happened_in_it(tmp_path: Path) -> None:
    log = TaskLog(tmp_path)
    log.create("P", "2026-03-02T09:00:00", title="before", assigned_to="juno")
    log.move("P", "in_progress", "2026-03-02T10:00:00")
    log.move("P", "review", "2026-03-05T10:00:00")
    log.move("P", "completed", "2026-03-05T12:00:00")
    log.create("Q", "2026-03-05T09:00:00", title="inside", assigned_to="vega")
    log.move("Q", "in_progress", "2026-03-05T11:00:00")
    log.move("Q", "failed", "2026-03-06T11:00:00")
    log.create("R", "2026-03-07T09:00:00", title="after", assigned_to="vega")
    args = ("stats", "--log-dir", str(tmp_path), "--json")
    f = json.loads(invoke(*args, "--since", "2026-03-04", "--until", "2026-03-07").output)
    f = f["task_analytics"]
    # created in [4th, 7th): Q only (P before, R at the end): failed, nothing completed
    assert (f["created"], f["completed"], f["failed"], f["open"]) == (1, 0, 1, 0)
    assert f["completion_rate"] == {"value": 0.0, "n": 1}
    assert f["first_pass_yield"] == {"value": None, "n": 0}  # n/a: nothing completed
    # P completed on the 5th, inside: counted in cycle time though created before,
    # from 02 09:00 to 05 12:00 = 75 h
    assert f["cycle_assigned_to_completed"] == {"p50": 75 * 3600.0, "p90": 75 * 3600.0, "n": 1}
    # in progress inside the window: P from the 4th 00:00 (clipped) to 05 10:00 = 34 h;
    # Q 05 11:00 -> 06 11:00 = 24 h
    assert f["time_in_status"]["in_progress"]["total_seconds"] == (34 + 24) * 3600.0
    # failed: Q from 06 11:00 to the end (7th 00:00) = 13 h
    assert f["time_in_status"]["failed"]["total_seconds"] == 13 * 3600.0
    assert f["throughput_per_day"] == {"2026-03-05": 1, "2026-03-06": 0}


def test_open_work_is_timed_up_to_an_injected_now(tmp_path: Path) -> None:
    log = TaskLog(tmp_path)
    log.create("T", "2026-03-02T09:00:00", title="t", assigned_to="juno")
    found = histories(read_tasks([LogDir(tmp_path)])).values()
    for now, hours in ((dt.datetime(2026, 3, 2, 10), 1), (dt.datetime(2026, 3, 3, 9), 24)):
        f = taskstats.compute(found, Window(), now)
        assert f.time_in_status["assigned"].total_seconds == hours * 3600
        assert f.board[0].in_status_seconds == hours * 3600
    before = taskstats.compute(found, Window(), dt.datetime(2026, 3, 1))
    assert (before.tasks, before.created, before.completion_rate.value) == (0, 0, None)


def charted(tmp_path: Path) -> taskstats.TaskFigures:
    log = TaskLog(tmp_path)
    for i, hours in enumerate([2, 4, 30]):  # completed 11:00 and 13:00 on the 2nd, 15:00 3rd
        name = f"T{i}"
        log.create(name, "2026-03-02T09:00:00", title=f"<b>{name}</b>", assigned_to="juno")
        log.move(name, "in_progress", "2026-03-02T09:30:00")
        log.move(name, "review", "2026-03-02T10:00:00")
        end = dt.datetime(2026, 3, 2, 9) + dt.timedelta(hours=hours)
        log.move(name, "completed", end.isoformat())
    log.create("OPEN1", "2026-03-03T09:00:00", title="open <i>one</i>")
    log.create("OPEN2", "2026-03-03T10:00:00", title="open two", assigned_to="vega")
    found = histories(read_tasks([LogDir(tmp_path)])).values()
    return taskstats.compute(found, Window(), dt.datetime(2026, 3, 4))


def test_board_columns_are_the_open_statuses(tmp_path: Path) -> None:
    board = taskcharts.board(charted(tmp_path))
    assert list(board) == ["pending", "assigned", "in_progress", "review"]
    assert [[c.task for c in cards] for cards in board.values()] == [["OPEN1"], ["OPEN2"], [], []]


def test_cycle_time_chart_has_one_point_per_completed_task(tmp_path: Path) -> None:
    chart = taskcharts.cycle_times(charted(tmp_path))
    points, p50, p90 = chart.figure["data"]
    assert points["y"] == [2.0, 4.0, 30.0]  # hours, in completion order
    assert points["text"] == ["T0", "T1", "T2"]
    assert p50["y"] == [4.0, 4.0] and p90["y"] == [30.0, 30.0]
    assert chart.title == "Cycle time, assigned → completed (3 tasks)"
    go.Figure(chart.figure)  # Plotly accepts the spec


def test_throughput_chart_counts_completions_per_day(tmp_path: Path) -> None:
    chart = taskcharts.throughput(charted(tmp_path))
    [bars] = chart.figure["data"]
    assert bars["x"] == ["2026-03-02", "2026-03-03"]  # days from the first task event
    assert bars["y"] == [2, 1]  # 11:00 and 13:00 on the 2nd, 15:00 on the 3rd
    go.Figure(chart.figure)


def test_the_report_has_the_task_section_with_titles_escaped(tmp_path: Path) -> None:
    charted(tmp_path)
    out = tmp_path / "r.html"
    result = invoke("report", "--log-dir", str(tmp_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<h2>Open tasks</h2>" in page and 'id="chart-task-cycle"' in page
    assert "open &lt;i&gt;one&lt;/i&gt;" in page and "open <i>one</i>" not in page
    assert page.index("Plotly.newPlot('chart-'+key") < page.rindex('"task-throughput"')


def test_rooms_have_their_own_tasks_and_a_row_each_in_stats(tmp_path: Path) -> None:
    small(tmp_path)
    room = tmp_path / "ops"
    log = TaskLog(room)
    (room / LOCK_FILE).touch()
    log.create("TASK-001", "2026-03-02T08:00:00", title="ops one", assigned_to="orion")
    log.move("TASK-001", "in_progress", "2026-03-02T09:00:00")
    log.move("TASK-001", "failed", "2026-03-02T10:00:00")
    result = invoke("stats", "--log-dir", str(tmp_path), "--json", "--until", "2026-03-04")
    f = json.loads(result.stdout)["task_analytics"]
    # the log directory: TASK-001 (in progress after a rework), TASK-002 (pending);
    # room ops: its own TASK-001, failed
    assert [(g["key"], g["created"], g["failed"], g["open"]) for g in f["per_room"]] == [
        (None, 2, 0, 2),
        ("ops", 1, 1, 0),
    ]
    assert (f["created"], f["failed"], f["open"]) == (3, 1, 2)
    both = invoke("tasks", "--log-dir", str(tmp_path), "TASK-001")
    assert both.exit_code == 2
    assert "task TASK-001 is in several rooms (-, ops): choose one with --room" in both.output
    one = invoke("tasks", "--log-dir", str(tmp_path), "--room", "ops", "TASK-001", "--json")
    assert json.loads(one.stdout)["status"] == "failed"
