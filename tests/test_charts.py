"""The report's charts as plain data: what each one shows, checked without a browser,
that Plotly accepts every spec, and that the page's size does not grow with messages."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import plotly.graph_objects as go
import pytest

from dead_drop_logger.read import charts, report
from dead_drop_logger.read.stats import StatsBuilder, compute


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


class FixedClock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 3, 1, 12, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def test_page_says_when_it_was_made() -> None:
    page = report.render(compute(MESSAGES), "t", "s", clock=FixedClock())
    assert (
        '<p class="sub">s; generated'
        ' <time datetime="2026-03-01T12:34:56+01:00">2026-03-01 12:34 UTC+01:00</time></p>'
    ) in page


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
    counts = trace["customdata"]  # the counts, as the hover shows them
    assert "%{customdata} messages" in trace["hovertemplate"]
    assert counts[0][9] == 2  # Monday 09h: messages 1 and 3 (the CC copy is not one)
    assert counts[1][10] == 1 and counts[1][11] == 2
    assert sum(map(sum, counts)) == 5


def test_one_busy_hour_does_not_wash_out_the_rest() -> None:
    """1,000 messages in one hour, 10 in another: on a linear scale the 10 would be 1 %
    of the way up the colours, indistinguishable from an empty hour; on the log scale
    it is a third of the way, and the colour bar says which scale and what counts."""
    busy = [msg(i, "juno", "atlas", "16T10:00:00") for i in range(1000)]
    quiet = [msg(2000 + i, "juno", "atlas", "17T15:00:00") for i in range(10)]
    (trace,) = charts.weekday_hour(compute(busy + quiet)).figure["data"]

    def shade(weekday: int, hour: int) -> float:  # 0: palest, 1: darkest
        z = trace["z"][weekday][hour]
        low = trace.get("zmin", min(map(min, trace["z"])))
        high = trace.get("zmax", max(map(max, trace["z"])))
        return float((z - low) / (high - low))

    assert shade(1, 15) > 0.3 and shade(0, 10) == 1 and shade(2, 12) == 0
    bar = trace["colorbar"]
    assert "log scale" in bar["title"]["text"]
    shown = dict(zip(bar["ticktext"], bar["tickvals"], strict=True))
    assert shown["10"] == pytest.approx(math.log10(11), abs=1e-3) and "1,000" in shown
    assert trace["customdata"][0][10] == 1000 and trace["customdata"][1][15] == 10


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


def test_threads_by_length_and_how_long_they_went_on() -> None:
    """What the ten-row table cannot say: every thread's length, and how long it went
    on from its first reply to its last; a thread of two (one reply) is a stack apart."""
    thread = [  # #1: replies 2 min and 40 min after it (3 messages, 38 min first to last)
        msg(1, "juno", "atlas", "16T09:00:00"),
        msg(2, "atlas", "juno", "16T09:02:00", reply_to=1),
        msg(3, "juno", "atlas", "16T09:40:00", reply_to=2),
    ]
    pairs = [  # #10, #20: one reply each
        msg(10, "vega", "lead", "16T11:00:00"),
        msg(11, "lead", "vega", "16T11:01:00", reply_to=10),
        msg(20, "vega", "lead", "16T12:00:00"),
        msg(21, "lead", "vega", "16T18:00:00", reply_to=20),
    ]
    long = [msg(100, "orion", "juno", "16T08:00:00")] + [  # #100: 14 messages over 2 days
        msg(100 + i, "juno" if i % 2 else "orion", "x", f"1{6 + i // 7}T09:{i:02d}:00",
            reply_to=100 + i - 1)
        for i in range(1, 14)
    ]  # fmt: skip
    chart = charts.thread_lengths(compute(thread + pairs + long))
    stacks = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in chart.figure["data"]}
    assert list(stacks) == ["one reply", "15-60 min", "a day or more"]
    assert stacks["one reply"]["2"] == 2 and sum(stacks["one reply"].values()) == 2
    assert stacks["15-60 min"]["3"] == 1 and sum(stacks["15-60 min"].values()) == 1
    assert stacks["a day or more"]["11-20"] == 1
    assert chart.figure["data"][0]["x"][-1] == "11-20"  # the classes stop at the longest
    assert chart.figure["layout"]["legend"]["title"]["text"] == "first to last reply"


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
    assert '<td data-label="task">T-2</td>' in few
    many = [msg(i, "juno", "atlas", "16T09:00:00", task_id=f"T-{i:04d}") for i in range(1005)]
    page = report.render(compute(many), "t", "s")
    assert "<summary>1,005 tasks (the first 1000 by first message)</summary>" in page
    assert '<td data-label="task">T-0999</td>' in page and ">T-1000<" not in page


def test_every_mark_has_a_legend() -> None:
    """Every trace has a name and the legend is shown (even for one trace); every colour
    bar says what it counts."""
    for chart in charts.all_charts(compute(MESSAGES)):
        layout = chart.figure["layout"]
        for trace in chart.figure["data"]:
            assert trace.get("name"), (chart.key, trace["type"])
            if trace["type"] == "heatmap":
                assert trace["colorbar"]["title"]["text"], chart.key
                assert trace.get("showscale", True), chart.key
            else:
                assert layout.get("showlegend") is True, chart.key
                assert trace.get("showlegend", True), chart.key


def lab(colour: str) -> tuple[float, float, float]:
    """An sRGB colour ``#rrggbb`` in CIE L*a*b* (D65), where distance is what eyes see."""
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    fx, fy, fz = (t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def test_sixteen_agents_get_sixteen_colours_apart() -> None:
    """A rooms report of 16 agents: 16 colours, no two alike by eye (CIE76 distance at
    least 20; two reds or two blues of Plotly's and D3's tens are 11 to 13 apart)."""
    builder = StatsBuilder(rooms=True)
    for i in range(16):
        room, name = ("ops", "research")[i % 2], f"agent-{i:02d}"
        for j in range(i + 1):  # different counts: the order is the stats' agent order
            builder.add(msg(100 * i + j, name, "lead", "16T09:00:00"), room)
    stats = builder.result()
    figures = {c.key: c.figure for c in charts.all_charts(stats)}
    colours = [t["marker"]["color"] for t in figures["per-day"]["data"] if t["name"] != "lead"]
    assert len(colours) == 16 and len(set(colours)) == 16
    closest = min(math.dist(lab(a), lab(b)) for a, b in itertools.combinations(colours, 2))
    assert closest >= 20, closest
    assert min(math.dist(lab(c), lab("#ffffff")) for c in colours) >= 20  # all show on white


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
