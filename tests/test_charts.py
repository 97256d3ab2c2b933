"""The report's charts as plain data: what each one shows, checked without a browser,
that Plotly accepts every spec, and that the page's size does not grow with messages."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest

from dead_drop_logger.read import charts, report
from dead_drop_logger.read.stats import compute


def msg(i: int, sender: str, to: str, when: str, **kw: Any) -> dict[str, Any]:
    return {"id": i, "from_agent": sender, "to_agent": to, "content": f"m{i}",
            "timestamp": f"2026-02-{when}", "is_cc": 0, "task_id": None, "reply_to": None,
            **kw}  # fmt: skip


MESSAGES = [
    msg(1, "juno", "atlas", "16T09:00:00", task_id="T-1"),  # a Monday
    {**msg(2, "juno", "lead", "16T09:00:00", task_id="T-1"), "is_cc": 1},
    msg(3, "atlas", "juno", "16T09:04:00", task_id="T-1", reply_to=1),
    msg(4, "lead", "all", "17T10:30:00"),
    msg(5, "juno", "atlas", "17T11:00:00", task_id="T-1", reply_to=3),
    msg(6, "vega", "atlas", "17T11:10:00", task_id="T-2", content="<a href='x'>link</a>"),
]


@pytest.fixture
def figures() -> dict[str, charts.Chart]:
    return {c.key: c for c in charts.all_charts(compute(MESSAGES))}


def test_six_charts_in_order(figures) -> None:
    assert list(figures) == ["per-day", "week-hour", "pairs", "responses", "tasks", "threads"]


def test_messages_per_day_stacked_by_sender(figures) -> None:
    fig = figures["per-day"].figure
    assert fig["layout"]["barmode"] == "stack"
    stacks = {t["name"]: t["y"] for t in fig["data"]}
    assert fig["data"][0]["x"] == ["2026-02-16", "2026-02-17"]
    assert stacks == {"atlas": [1, 0], "juno": [1, 1], "lead": [0, 1], "vega": [0, 1]}


def test_weekday_hour_heatmap(figures) -> None:
    (trace,) = figures["week-hour"].figure["data"]
    assert trace["y"][0] == "Mon" and trace["x"][:2] == ["00", "01"] and len(trace["x"]) == 24
    assert figures["week-hour"].figure["layout"]["xaxis"]["type"] == "category"  # not 0, 5, 10
    assert trace["z"][0][9] == 2  # Monday 09h: messages 1 and 3 (the CC copy is not one)
    assert trace["z"][1][10] == 1 and trace["z"][1][11] == 2
    assert sum(map(sum, trace["z"])) == 5


def test_who_talks_to_whom_matrix(figures) -> None:
    (trace,) = figures["pairs"].figure["data"]
    assert (trace["y"], trace["x"]) == (["atlas", "juno", "vega"], ["atlas", "juno"])
    assert trace["z"] == [[0, 1], [2, 0], [1, 0]]


def test_response_time_buckets_per_responder(figures) -> None:
    data = figures["responses"].figure["data"]
    # atlas answered #1 in 4 min; juno answered #3 (26h later: too late) - none.
    assert [(t["name"], t["y"]) for t in data] == [("atlas", [0, 1, 0, 0, 0, 0])]
    assert data[0]["x"][1] == "1-5 min"


def test_task_timeline_bars_from_first_to_last(figures) -> None:
    bars, starts = figures["tasks"].figure["data"]
    assert bars["y"] == ["T-1", "T-2"]
    assert bars["base"] == ["2026-02-16T09:00:00", "2026-02-17T11:10:00"]
    assert bars["x"] == [(26 * 3600) * 1000, 0]
    assert starts["x"] == bars["base"]


def test_busiest_threads_with_escaped_previews() -> None:
    stats = compute(MESSAGES)
    stats.threads.busiest[0].preview = "<a href='https://x.test'>click</a>\n  me"
    (trace,) = charts.busiest_threads(stats).figure["data"]
    assert trace["y"] == ["#1"] and trace["x"] == [3]
    assert trace["customdata"] == [["&lt;a href='https://x.test'&gt;click&lt;/a&gt; me"]]


def test_plotly_accepts_every_spec(figures) -> None:
    for chart in figures.values():
        go.Figure(chart.figure)  # raises on a property Plotly does not know


def test_many_tasks_are_cut_to_the_busiest(figures) -> None:
    many = [msg(i, "juno", "atlas", "16T09:00:00", task_id=f"T-{i}") for i in range(80)]
    chart = charts.task_timeline(compute(many))
    assert len(chart.figure["data"][0]["y"]) == charts.MAX_TASKS
    assert chart.title.endswith(f"({charts.MAX_TASKS} busiest of 80 tasks)")


def test_page_size_does_not_grow_with_messages() -> None:
    def page(repeat: int) -> int:
        many = [
            {**m, "id": m["id"] + 10 * r, "reply_to": None} for r in range(repeat) for m in MESSAGES
        ]
        return len(report.render(compute(many), "t", "s"))

    small, big = page(1), page(2000)
    assert big - small < 2000  # a few digits more, not a point per message


def test_page_lists_tasks_up_to_a_cap() -> None:
    few = report.render(compute(MESSAGES), "t", "s")
    assert "<details><summary>2 tasks</summary>" in few
    assert "<td>T-2</td>" in few
    many = [msg(i, "juno", "atlas", "16T09:00:00", task_id=f"T-{i:04d}") for i in range(1005)]
    page = report.render(compute(many), "t", "s")
    assert "<summary>1,005 tasks (the first 1000 by first message)</summary>" in page
    assert "<td>T-0999</td>" in page and "<td>T-1000</td>" not in page


def test_one_colour_per_agent_in_every_chart() -> None:
    """An agent is the same colour in messages per day and in response times, and no
    two agents share one."""
    stats = compute(MESSAGES)
    figures = {c.key: c.figure for c in charts.all_charts(stats)}
    per_day = {t["name"]: t["marker"]["color"] for t in figures["per-day"]["data"]}
    answers = {t["name"]: t["marker"]["color"] for t in figures["responses"]["data"]}
    assert answers and all(per_day[name] == colour for name, colour in answers.items())
    assert len(set(per_day.values())) == len(per_day)


def test_days_are_a_date_axis_that_keeps_the_day() -> None:
    axis = charts.all_charts(compute(MESSAGES))[0].figure["layout"]["xaxis"]
    assert axis["type"] == "date" and "%d" in axis["tickformat"]
    assert axis["hoverformat"] == "%Y-%m-%d"
