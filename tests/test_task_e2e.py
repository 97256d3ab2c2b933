"""End to end: the server's task tools (serverdb) -> the real logger -> ``stats --json``
and ``tasks``. Each step is made while the logger runs and waited for in tasks-*.json,
so every transition is seen (no gap); the figures are worked out by hand below."""

from __future__ import annotations

import json
from pathlib import Path

import serverdb
import tasklines
from conftest import logged_ids, run_command, wait_until

H = 3600


def test_server_tools_logger_and_stats_agree(
    server_db: Path, log_dir: Path, logger, home_env: dict[str, str]
) -> None:
    conn = serverdb.connect(server_db)
    serverdb.register(conn, "ada", role="lead", now="2026-03-02T08:00:00")
    serverdb.register(conn, "juno", role="builder", now="2026-03-02T08:00:00")
    serverdb.register(conn, "vega", role="builder", now="2026-03-02T08:00:00")
    proc = logger("--retention-days", "0").start()
    proc.wait_ready()
    seen = 0

    def step(action, *args, **kw) -> object:  # type: ignore[no-untyped-def]
        nonlocal seen
        value = action(conn, *args, **kw)
        seen += 1
        wait_until(lambda: len(tasklines.lines(log_dir)) >= seen, what=f"task line {seen}")
        return value

    d = "2026-03-0"  # in time order, as the server's clock gives them
    t1 = step(serverdb.create_task, "ada", "login", assign_to="juno", project="web",
              role_hat="builder", now=d + "2T09:00:00")  # fmt: skip
    t2 = step(serverdb.create_task, "ada", "cache", assign_to="vega", project="api",
              now=d + "2T09:30:00")  # fmt: skip
    step(serverdb.update_task, "juno", t1, "in_progress", now=d + "2T10:00:00")
    step(serverdb.update_task, "vega", t2, "in_progress", now=d + "2T11:00:00")
    step(serverdb.submit_for_review, "juno", t1, "done", now=d + "2T12:00:00")
    step(serverdb.reject_task, "ada", t1, "tests missing", now=d + "2T13:00:00")
    step(serverdb.submit_for_review, "juno", t1, "with tests", now=d + "2T15:00:00")
    step(serverdb.approve_task, "ada", t1, now=d + "2T16:00:00")
    step(serverdb.update_task, "vega", t2, "failed", now=d + "2T18:00:00")
    step(serverdb.verify_task, "ada", t1, now=d + "3T09:00:00")
    step(serverdb.create_task, "ada", "docs", project="web", now=d + "4T09:00:00")
    wait_until(lambda: len(tasklines.lines(log_dir)) == 11, what="every task line")
    wait_until(lambda: logged_ids(log_dir) == serverdb.all_ids(server_db), what="messages")
    assert proc.stop() == 0
    assert not [line for line in tasklines.lines(log_dir) if line.get("gap")]

    out = run_command("stats", "--log-dir", str(log_dir), "--json", "--until", "2026-03-05",
                      env=home_env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    f = json.loads(out.stdout)["task_analytics"]
    # login: verified after one rework; cache: failed; docs: pending
    assert (f["created"], f["completed"], f["verified"], f["failed"], f["open"]) == (3, 1, 1, 1, 1)
    assert f["completion_rate"] == {"value": 1 / 3, "n": 3}
    assert f["first_pass_yield"] == {"value": 0.0, "n": 1}  # login had a rework
    assert (f["reworks"], f["review_rejections"], f["verification_rejections"]) == (1, 1, 0)
    # login: assigned 09:00 -> completed 16:00 = 7 h; completed -> verified 3rd 09:00 = 17 h
    assert f["cycle_assigned_to_completed"] == {"p50": 7 * H, "p90": 7 * H, "n": 1}
    assert f["cycle_completed_to_verified"] == {"p50": 17 * H, "p90": 17 * H, "n": 1}
    # review: login 12:00 -> 13:00 and 15:00 -> 16:00
    assert f["time_in_status"]["review"]["total_seconds"] == 2 * H

    history = run_command("tasks", "--log-dir", str(log_dir), t1, "--json", env=home_env)
    found = json.loads(history.stdout)
    assert [(t["to"], t["by"]) for t in found["transitions"]] == [
        ("assigned", "ada"), ("in_progress", "juno"), ("review", "juno"),
        ("in_progress", "ada"), ("review", "juno"), ("completed", "ada"), ("verified", "ada"),
    ]  # fmt: skip
    assert all(m["task_id"] == t1 for m in found["messages"]) and found["messages"]
