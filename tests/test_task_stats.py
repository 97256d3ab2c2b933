"""Task analytics of ``stats --json``: every figure against a scripted fortnight worked out
by hand.

Nine tasks over 2026-03-02 .. 2026-03-15, the same fortnight two ways (every test runs
on both):

- ``lines``: written as tasks-*.json lines exactly as the logger writes them
  (tests/taskscript.py);
- ``server``: the server's tools (tests/serverdb.py: create_task, update_task,
  submit_for_review, approve_task, reject_task, verify_task, assign_role_hat, and
  register, ping, set_status for the team) on a real server database, each step at its
  scripted time (``now=``), followed by the real ``dead-drop-logger`` process, which
  writes the lines; T5's review and approval are made while that logger is stopped, so
  its restart sees in_progress -> completed and fills ``via`` from the server's
  transition messages.

The figures are read up to --until 2026-03-16 (the end: open work is timed up to it).
Every expected number below is computed in the comments from the script, not by the
code under test; they hold for both ways (see ``server_fortnight`` for what the
server's rows have that the lines' do not, and why no figure rests on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import serverdb
import tasklines
from click.testing import CliRunner
from conftest import LoggerProcess, wait_until
from taskscript import TaskLog

from dead_drop_logger.control.cli import cli

D = "2026-03-"
H = 3600


def fortnight(log_dir: Path) -> None:
    log = TaskLog(log_dir)
    # T1: web, juno, builder. Straight through, verified.
    log.create("T1", D + "02T09:00:00", title="login page", project="web",
               assigned_to="juno", role_hat="builder")  # fmt: skip
    log.move("T1", "in_progress", D + "02T10:00:00")
    log.move("T1", "review", D + "02T14:00:00")
    log.move("T1", "completed", D + "02T16:00:00", approved_by="ada")
    log.move("T1", "verified", D + "03T10:00:00", verified_by="ada")
    # T2: web, created pending, then assigned to vega (fixer); one rework in review.
    log.create("T2", D + "03T09:00:00", title="fix header", project="web", role_hat="fixer")
    log.move("T2", "assigned", D + "03T11:00:00", assigned_to="vega")
    log.move("T2", "in_progress", D + "03T12:00:00")
    log.move("T2", "review", D + "04T12:00:00")
    log.move("T2", "in_progress", D + "04T15:00:00")  # rework (review rejected)
    log.move("T2", "review", D + "05T10:00:00")
    log.move("T2", "completed", D + "05T12:00:00")
    # T3: api, builder, juno; fails, reassigned to vega, completed, verification
    # rejected, completed again, verified.
    log.create("T3", D + "04T09:00:00", title="rate limits", project="api",
               assigned_to="juno", role_hat="builder")  # fmt: skip
    log.move("T3", "in_progress", D + "04T10:00:00")
    log.move("T3", "failed", D + "04T18:00:00")
    log.move("T3", "assigned", D + "05T09:00:00", assigned_to="vega")
    log.move("T3", "in_progress", D + "05T10:00:00")
    log.move("T3", "review", D + "06T10:00:00")
    log.move("T3", "completed", D + "06T12:00:00")
    log.move("T3", "in_progress", D + "07T09:00:00")  # verification rejected
    log.move("T3", "review", D + "07T15:00:00")
    log.move("T3", "completed", D + "07T16:00:00")
    log.move("T3", "verified", D + "08T10:00:00", verified_by="ada")
    # T4: api, vega, fixer; fails and stays failed; its result edited later.
    log.create("T4", D + "06T09:00:00", title="cache", project="api",
               assigned_to="vega", role_hat="fixer")  # fmt: skip
    log.move("T4", "in_progress", D + "06T10:00:00")
    log.move("T4", "failed", D + "06T20:00:00")
    log.edit("T4", D + "06T21:00:00", result="cannot reproduce")
    # T5: web, juno, builder; the logger missed review (a gap the messages filled).
    log.create("T5", D + "09T09:00:00", title="footer", project="web",
               assigned_to="juno", role_hat="builder")  # fmt: skip
    log.move("T5", "in_progress", D + "09T09:30:00")
    log.move("T5", "completed", D + "10T12:00:00", via=("review",), gap=True)
    log.move("T5", "verified", D + "11T09:00:00", verified_by="ada")
    # T6: web, no assignee, no hat: pending to the end.
    log.create("T6", D + "10T10:00:00", title="docs", project="web")
    # T7: api, vega, builder; rework in review, in progress at the end.
    log.create("T7", D + "11T09:00:00", title="search", project="api",
               assigned_to="vega", role_hat="builder")  # fmt: skip
    log.move("T7", "in_progress", D + "12T09:00:00")
    log.move("T7", "review", D + "13T09:00:00")
    log.move("T7", "in_progress", D + "13T15:00:00")  # rework
    # T8: api, juno, fixer; assigned to the end.
    log.create("T8", D + "14T09:00:00", title="logs", project="api",
               assigned_to="juno", role_hat="fixer")  # fmt: skip
    # T9: web, vega, builder; completed, not verified.
    log.create("T9", D + "12T09:00:00", title="avatar", project="web",
               assigned_to="vega", role_hat="builder")  # fmt: skip
    log.move("T9", "in_progress", D + "12T10:00:00")
    log.move("T9", "review", D + "13T10:00:00")
    log.move("T9", "completed", D + "13T12:00:00")


def server_fortnight(base: Path) -> None:
    """The fortnight of ``fortnight`` made by the server's tools, step for step at the
    same times, in the order of time (as a server makes them: so T9, created on the
    12th, is TASK-008 and T8, created on the 14th, TASK-009), recorded by the real
    logger, which is waited for after each step (each change seen on its own) except
    around T5's review and approval, made while it is stopped.

    What the server's rows have that the script's lines do not, none of it read by a
    task figure: ``approved_by`` stays null (the stored ``approve_task`` does not set
    it; the script's T1 has ``ada``), ``result`` holds the review's JSON after
    ``submit_for_review``, and T4's edit of the 6th, 21:00 is ``assign_role_hat``
    setting the hat it already wears (the one tool that changes a row without moving
    its status: a line with ``from`` equal to ``to``, as the script's edit of
    ``result``; its "cannot reproduce" goes with the failure at 20:00 instead). Where
    the stored server cannot express a step, the modelled tools of tests/serverdb.py
    are used: T2's pending -> assigned to vega and T3's failed -> assigned to vega
    (``update_task(assign_to=...)``: the stored server never sets ``assigned_to`` after
    ``create_task``), and T3's rejected verification and the verifications of T1, T3,
    T5 (``verify_task``, not in the stored server)."""
    db, log_dir = base / "messages.db", base / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    logger = LoggerProcess(  # keeping March's files (its retention would delete them)
        db, log_dir, "--retention-days", "0", env={"XDG_CONFIG_HOME": str(base / "xdg")}
    )
    logger.start().wait_ready()
    ids: dict[str, str] = {}
    lines_expected = 0

    def at(day: str) -> str:
        return D + day

    def seen() -> None:
        """Until the logger has written the line of every task step so far."""
        wait_until(
            lambda: len(tasklines.lines(log_dir)) == lines_expected,
            what=f"{lines_expected} task lines",
        )

    def step(day: str, tool: Callable[..., object], *args: object, **kw: object) -> None:
        nonlocal lines_expected
        args = tuple(ids.get(a, a) if isinstance(a, str) else a for a in args)
        tool(conn, *args, now=at(day), **kw)
        lines_expected += 1
        seen()

    def create(task: str, day: str, title: str, project: str, to: str = "", hat: str = "") -> None:
        nonlocal lines_expected
        ids[task] = serverdb.create_task(
            conn, "ada", title, project=project, assign_to=to, role_hat=hat, now=at(day)
        )
        lines_expected += 1
        seen()

    def agent(day: str, name: str, status: str | None = None) -> None:
        """An agent's heartbeat, and its status text when given (no task line)."""
        serverdb.ping(conn, name, now=at(day))
        if status is not None:
            serverdb.set_status(conn, name, status.format(**ids), now=at(day))

    update, submit = serverdb.update_task, serverdb.submit_for_review
    approve, reject, verify = serverdb.approve_task, serverdb.reject_task, serverdb.verify_task
    serverdb.register(conn, "ada", role="lead", now=at("02T08:00:00"))
    serverdb.register(conn, "juno", role="builder", now=at("02T08:00:00"))
    serverdb.register(conn, "vega", role="builder,fixer", now=at("02T08:00:00"))
    create("T1", "02T09:00:00", "login page", "web", "juno", "builder")
    agent("02T10:00:00", "juno", "working on {T1}")
    step("02T10:00:00", update, "juno", "T1", "in_progress")
    step("02T14:00:00", submit, "juno", "T1", "login form and tests")
    agent("02T14:00:00", "juno", "waiting for work")
    step("02T16:00:00", approve, "ada", "T1")
    create("T2", "03T09:00:00", "fix header", "web", hat="fixer")  # pending
    step("03T10:00:00", verify, "ada", "T1")
    step("03T11:00:00", update, "ada", "T2", "assigned", assign_to="vega")  # modelled
    agent("03T12:00:00", "vega", "working on {T2}")
    step("03T12:00:00", update, "vega", "T2", "in_progress")
    create("T3", "04T09:00:00", "rate limits", "api", "juno", "builder")
    agent("04T10:00:00", "juno", "working on {T3}")
    step("04T10:00:00", update, "juno", "T3", "in_progress")
    step("04T12:00:00", submit, "vega", "T2", "header fixed")
    step("04T15:00:00", reject, "ada", "T2", "breaks on mobile")  # rework
    step("04T18:00:00", update, "juno", "T3", "failed")
    agent("04T18:00:00", "juno", "waiting for work")
    step("05T09:00:00", update, "ada", "T3", "assigned", assign_to="vega")  # modelled
    step("05T10:00:00", submit, "vega", "T2", "header fixed, mobile too")
    agent("05T10:00:00", "vega", "working on {T3}")
    step("05T10:00:00", update, "vega", "T3", "in_progress")
    step("05T12:00:00", approve, "ada", "T2")
    create("T4", "06T09:00:00", "cache", "api", "vega", "fixer")
    step("06T10:00:00", update, "vega", "T4", "in_progress")
    step("06T10:00:00", submit, "vega", "T3", "limits in place")
    step("06T12:00:00", approve, "ada", "T3")
    step("06T20:00:00", update, "vega", "T4", "failed", result="cannot reproduce")
    step("06T21:00:00", serverdb.assign_role_hat, "ada", "T4", "fixer")  # the edit
    step("07T09:00:00", verify, "ada", "T3", passed=False)  # modelled: rejected
    step("07T15:00:00", submit, "vega", "T3", "limits per client")
    step("07T16:00:00", approve, "ada", "T3")
    step("08T10:00:00", verify, "ada", "T3")
    agent("08T10:00:00", "vega", "waiting for work")
    create("T5", "09T09:00:00", "footer", "web", "juno", "builder")
    agent("09T09:30:00", "juno", "working on {T5}")
    step("09T09:30:00", update, "juno", "T5", "in_progress")
    create("T6", "10T10:00:00", "docs", "web")  # no assignee, no hat: pending
    logger.stop()  # T5's review and approval between two reads: one line, a gap
    assert logger.proc is not None and logger.proc.returncode == 0, logger.stderr()
    submit(conn, "juno", ids["T5"], "footer done", now=at("10T11:00:00"))
    approve(conn, "ada", ids["T5"], now=at("10T12:00:00"))
    lines_expected += 1
    logger.start().wait_ready()
    seen()
    step("11T09:00:00", verify, "ada", "T5")
    create("T7", "11T09:00:00", "search", "api", "vega", "builder")
    create("T9", "12T09:00:00", "avatar", "web", "vega", "builder")
    agent("12T09:00:00", "vega", "working on {T7}")
    step("12T09:00:00", update, "vega", "T7", "in_progress")
    step("12T10:00:00", update, "vega", "T9", "in_progress")
    step("13T09:00:00", submit, "vega", "T7", "search box")
    step("13T10:00:00", submit, "vega", "T9", "avatar upload")
    step("13T12:00:00", approve, "ada", "T9")
    step("13T15:00:00", reject, "ada", "T7", "no ranking")  # rework
    create("T8", "14T09:00:00", "logs", "api", "juno", "fixer")
    agent("14T09:00:00", "juno", "waiting for {T8}")
    logger.stop()
    assert logger.proc is not None and logger.proc.returncode == 0, logger.stderr()
    conn.close()
    told = tasklines.paths(tasklines.lines(log_dir))  # each line starts where one ended
    t5 = [line for line in tasklines.lines(log_dir) if line["task"] == ids["T5"]]
    assert [(t["from"], t["to"], t.get("via"), t.get("gap")) for t in t5] == [
        (None, "assigned", None, None),
        ("assigned", "in_progress", None, None),
        ("in_progress", "completed", ["review"], True),
        ("completed", "verified", None, None),
    ]
    assert told[ids["T3"]] == [
        "assigned", "in_progress", "failed", "assigned", "in_progress", "review",
        "completed", "in_progress", "review", "completed", "verified",
    ]  # fmt: skip
    assert {line["agent"] for line in tasklines.lines(log_dir, "agents")} == {
        "ada", "juno", "vega"
    }  # fmt: skip


def stats_json(log_dir: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["stats", "--log-dir", str(log_dir), "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


@pytest.fixture(scope="module", params=["lines", "server"])
def fortnight_logs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The fortnight's log directory, written one way or the other (built once each)."""
    base = tmp_path_factory.mktemp(request.param)
    if request.param == "lines":
        fortnight(base / "logs")
    else:
        server_fortnight(base)
    return base / "logs"


@pytest.fixture
def figures(fortnight_logs: Path) -> dict[str, Any]:
    found: dict[str, Any] = stats_json(fortnight_logs, "--until", "2026-03-16")["task_analytics"]
    return found


def rate(value: float | None, n: int) -> dict[str, Any]:
    return {"value": value, "n": n}


def spread(p50: float | None, p90: float | None, n: int) -> dict[str, Any]:
    return {"p50": p50, "p90": p90, "n": n}


def test_counts_and_rates(figures: dict[str, Any]) -> None:
    assert figures["end"] == "2026-03-16T00:00:00"
    assert figures["tasks"] == 9
    assert figures["created"] == 9  # T1..T9, all created in the (unbounded) window
    # at the end: completed or verified T1 T2 T3 T5 T9; verified T1 T3 T5; failed T4;
    # open T6 (pending) T7 (in_progress) T8 (assigned): 5 + 1 + 3 = 9
    assert (figures["completed"], figures["verified"]) == (5, 3)
    assert (figures["failed"], figures["open"]) == (1, 3)
    assert figures["completion_rate"] == rate(5 / 9, 9)
    assert figures["failure_rate"] == rate(1 / 9, 9)
    assert figures["open_share"] == rate(3 / 9, 9)
    # of the 5 completed, T2 and T3 had a rework: T1 T5 T9 passed first time
    assert figures["first_pass_yield"] == rate(3 / 5, 5)
    # T2 review -> in_progress, T7 review -> in_progress, T3 completed -> in_progress
    assert figures["reworks"] == 3
    assert figures["review_rejections"] == 2
    assert figures["verification_rejections"] == 1
    assert figures["reworked_tasks"] == 3
    assert figures["gaps"] == 1  # T5


def test_cycle_times(figures: dict[str, Any]) -> None:
    # first assigned -> last completed:
    # T1 02 09:00 -> 02 16:00 = 7 h; T2 03 11:00 -> 05 12:00 = 49 h;
    # T3 04 09:00 (its first assignment; failed and reassigned 05 09:00) ->
    #    07 16:00 (its last completion) = 79 h; T5 09 09:00 -> 10 12:00 = 27 h;
    # T9 12 09:00 -> 13 12:00 = 27 h. Sorted 7 27 27 49 79: p50 27 h, p90 rank 5 = 79 h
    assert figures["cycle_assigned_to_completed"] == spread(27 * H, 79 * H, 5)
    # last completion -> verified: T1 02 16:00 -> 03 10:00 = 18 h; T3 07 16:00 ->
    # 08 10:00 = 18 h; T5 10 12:00 -> 11 09:00 = 21 h. p50 18 h, p90 rank 3 = 21 h
    assert figures["cycle_completed_to_verified"] == spread(18 * H, 21 * H, 3)


def test_time_in_each_status(figures: dict[str, Any]) -> None:
    spent = figures["time_in_status"]
    assert set(spent) == {"pending", "assigned", "in_progress", "review", "completed", "failed"}

    def timed(n: int, total: float, p50: float, p90: float) -> dict[str, Any]:
        return {"n": n, "total_seconds": total, "p50": p50, "p90": p90}

    # pending: T2 2 h; T6 10 10:00 -> end 16 00:00 = 134 h
    assert spent["pending"] == timed(2, 136 * H, (2 + 134) / 2 * H, 134 * H)
    # assigned: T1 1 h, T2 1 h, T3 1 h + 1 h, T4 1 h, T5 0.5 h, T7 24 h, T8 14 09:00 ->
    # end = 39 h, T9 1 h. Per task sorted .5 1 1 1 1 2 24 39 (total 69.5 h): p50 1 h,
    # p90 rank 8 = 39 h
    assert spent["assigned"] == timed(8, 69.5 * H, 1 * H, 39 * H)
    # in_progress: T1 4 h; T2 24 + 19 = 43 h; T3 8 + 24 + 6 = 38 h; T4 10 h;
    # T5 09 09:30 -> 10 12:00 = 26.5 h; T7 24 + (13 15:00 -> end = 57) = 81 h; T9 24 h.
    # Sorted 4 10 24 26.5 38 43 81 (total 226.5 h): p50 26.5 h, p90 rank 7 = 81 h
    assert spent["in_progress"] == timed(7, 226.5 * H, 26.5 * H, 81 * H)
    # review: T1 2 h; T2 3 + 2 = 5 h; T3 2 + 1 = 3 h; T5 none (the gap's review has no
    # time); T7 6 h; T9 2 h. Sorted 2 2 3 5 6 (18 h): p50 3 h, p90 rank 5 = 6 h
    assert spent["review"] == timed(5, 18 * H, 3 * H, 6 * H)
    # completed: T1 18 h; T2 05 12:00 -> end = 252 h; T3 21 + 18 = 39 h; T5 21 h;
    # T9 13 12:00 -> end = 60 h. Sorted 18 21 39 60 252 (390 h): p50 39 h, p90 252 h
    assert spent["completed"] == timed(5, 390 * H, 39 * H, 252 * H)
    # failed: T3 04 18:00 -> 05 09:00 = 15 h; T4 06 20:00 -> end = 220 h (its edit at
    # 21:00 changes no status). p50 (15 + 220) / 2, p90 rank 2 = 220 h
    assert spent["failed"] == timed(2, 235 * H, 117.5 * H, 220 * H)


def test_open_work_and_throughput(figures: dict[str, Any]) -> None:
    assert figures["open_by_status"] == {
        "pending": 1, "assigned": 1, "in_progress": 1, "review": 0
    }  # fmt: skip
    # age since created at the end: T6 5 d 14 h, T7 4 d 15 h, T8 1 d 15 h
    assert figures["wip_by_age"] == {"<1d": 0, "1-3d": 1, "3-7d": 2, "7-14d": 0, ">=14d": 0}
    # last completions: T1 on the 2nd, T2 5th, T3 7th, T5 10th, T9 13th; days from the
    # first task event (2nd) to the last (T8 created on the 14th)
    done_on = {2: 1, 5: 1, 7: 1, 10: 1, 13: 1}
    assert figures["throughput_per_day"] == {
        f"2026-03-{day:02d}": done_on.get(day, 0) for day in range(2, 15)
    }


def group(
    key: str | None,
    created: int,
    completed: int,
    failed: int,
    still_open: int,
    fpy: dict[str, Any],
    cycle: dict[str, Any],
) -> dict[str, Any]:
    return {
        "key": key,
        "created": created,
        "completed": completed,
        "failed": failed,
        "open": still_open,
        "completion_rate": rate(completed / created, created),
        "failure_rate": rate(failed / created, created),
        "first_pass_yield": fpy,
        "cycle_assigned_to_completed": cycle,
    }


def test_per_agent_role_hat_and_project(figures: dict[str, Any]) -> None:
    none = group("(none)", 1, 0, 0, 1, rate(None, 0), spread(None, None, 0))  # T6
    # assignee at the end. vega: T2 T3 (reassigned to her) T4 T7 T9: completed T2 T3 T9,
    # failed T4, open T7; first pass T9 of 3; cycles 49 79 27 h -> p50 49 h, p90 79 h
    # juno: T1 T5 T8: completed T1 T5, open T8; cycles 7, 27 h -> p50 17 h, p90 27 h
    assert figures["per_agent"] == [
        group("vega", 5, 3, 1, 1, rate(1 / 3, 3), spread(49 * H, 79 * H, 3)),
        group("juno", 3, 2, 0, 1, rate(1.0, 2), spread(17 * H, 27 * H, 2)),
        none,
    ]
    # builder: T1 T3 T5 T7 T9: completed T1 T3 T5 T9, open T7; first pass T1 T5 T9;
    # cycles 7 79 27 27 -> p50 27 h, p90 rank 4 = 79 h. fixer: T2 T4 T8: completed T2,
    # failed T4, open T8; first pass 0 of 1; cycle 49 h
    assert figures["per_role_hat"] == [
        group("builder", 5, 4, 0, 1, rate(3 / 4, 4), spread(27 * H, 79 * H, 4)),
        group("fixer", 3, 1, 1, 1, rate(0.0, 1), spread(49 * H, 49 * H, 1)),
        none,
    ]
    # web: T1 T2 T5 T6 T9: completed T1 T2 T5 T9, open T6; first pass T1 T5 T9; cycles
    # 7 49 27 27 -> p50 27 h, p90 49 h. api: T3 T4 T7 T8: completed T3, failed T4,
    # open T7 T8; first pass 0 of 1; cycle 79 h
    assert figures["per_project"] == [
        group("web", 5, 4, 0, 1, rate(3 / 4, 4), spread(27 * H, 49 * H, 4)),
        group("api", 4, 1, 1, 2, rate(0.0, 1), spread(79 * H, 79 * H, 1)),
    ]
    assert figures["per_room"] == []  # no rooms read
