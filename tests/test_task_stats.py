"""Task analytics of ``stats --json``: every figure against a scripted fortnight worked out
by hand.

Nine tasks over 2026-03-02 .. 2026-03-15, written as tasks-*.json lines exactly as the
logger writes them (tests/taskscript.py). The figures are read up to --until
2026-03-16 (the end: open work is timed up to it). Every expected number below is
computed in the comments from the script, not by the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
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


def stats_json(log_dir: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["stats", "--log-dir", str(log_dir), "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


@pytest.fixture
def figures(tmp_path: Path) -> dict[str, Any]:
    fortnight(tmp_path)
    found: dict[str, Any] = stats_json(tmp_path, "--until", "2026-03-16")["task_analytics"]
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
