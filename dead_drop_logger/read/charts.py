"""The report's six charts, as plain Plotly figure specs built from :class:`stats.Stats`.

Why plain dicts: the specs are data (traces and layout as Plotly.js takes them), so
tests check what each chart shows without a browser or even Plotly installed, and the
report stays the size of the aggregated numbers whatever the number of messages: no
chart carries one point per message. Text that came from messages (thread previews,
names) is escaped so Plotly's hover labels cannot turn it into markup or links. When
rooms were read, names, tasks and thread roots carry their room (``juno [ops]``), so two
rooms' ``juno`` or ``#12`` are two bars, never one.

What a reader needs from each chart, and why it is drawn so: every trace has a name and
shows in a legend, and every colour bar says what it counts, so no mark is a guess; the
agents' colours come from a palette of 24 that stay apart by eye (a rooms report easily
has 16 agents); counts that span orders of magnitude (one busy hour against quiet
nights) are coloured on a log scale, so the quiet cells still show.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from ..durations import duration
from .responses import BUCKETS
from .stats import THREAD_SPANS, Stats, who
from .stats_format import WEEKDAYS

MAX_TASKS = 50
PREVIEW_CHARS = 120
Figure = dict[str, Any]
# One colour per agent across every chart: Plotly's Dark24, whose 24 colours stay apart
# by eye and show on white (Plotly's ten then D3's ten, as before, had two reds, two
# blues and two cyans among the first sixteen). The busiest agents get the first; past
# 24 agents the colours repeat.
PALETTE = (
    "#2e91e5", "#e15f99", "#1ca71c", "#fb0d0d", "#da16ff", "#222a2a", "#b68100",
    "#750d86", "#eb663b", "#511cfb", "#00a08b", "#fb00d1", "#fc0080", "#b2828d",
    "#6c7c32", "#778aae", "#862a16", "#a777f1", "#620042", "#1616a7", "#da60ca",
    "#6c4516", "#0d2a63", "#af0038",
)  # fmt: skip


@dataclass
class Chart:
    key: str
    title: str
    figure: Figure


def label(text: str) -> str:
    """Text from the logs made safe for a Plotly label: no tags, no links."""
    return html.escape(text, quote=False)


def preview(content: str | None, limit: int = PREVIEW_CHARS) -> str:
    """The start of a message on one line."""
    if not content:
        return "(first message not in the logs read)"
    flat = " ".join(content.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def agent_colours(stats: Stats) -> dict[str, str]:
    """Each agent's colour (keyed by its label, room included), in the stats' agent
    order (most messages sent first), the same in every chart that shows agents."""
    names = [who(a.name, a.room) for a in stats.agents]
    names += sorted({s for row in stats.per_day_sender.values() for s in row} - set(names))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


HEIGHT = 380
# Below the plot (under the axis' labels and title whatever their height), left-aligned.
LEGEND = {
    "orientation": "h",
    "x": 0,
    "xanchor": "left",
    "y": 0,
    "yanchor": "bottom",
    "yref": "container",
}


def _layout(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "autosize": True,
        "height": HEIGHT,
        # the top margin holds the toolbar (shown on hover), so it covers no bar
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "showlegend": True,  # even for a single trace: every mark has its legend
        "legend": LEGEND,
        "hoverlabel": {"namelength": -1},
    }
    base.update(extra)
    for axis in ("xaxis", "yaxis"):  # labels and titles push the margins, none overlap
        base[axis] = {"automargin": True, **base.get(axis, {})}
    return base


def legend_room(entries: int) -> int:
    """A chart's height for a legend of ``entries`` (all of them, not only the first):
    past five (one row wide, a few on a phone) each adds a line's worth, so the legend,
    held to half the chart, does not squeeze the plot to a sliver (16 agents)."""
    return HEIGHT + 16 * max(0, entries - 5)


def messages_per_day(stats: Stats) -> Chart:
    days = list(stats.per_day)
    senders = sorted({s for row in stats.per_day_sender.values() for s in row})
    colours = agent_colours(stats)
    data = [
        {
            "type": "bar",
            "name": label(sender),
            "marker": {"color": colours[sender]},
            "x": days,
            "y": [stats.per_day_sender.get(day, {}).get(sender, 0) for day in days],
            "hovertemplate": "%{x}: %{y} messages<extra>%{fullData.name}</extra>",
        }
        for sender in senders
    ]
    return Chart(
        "per-day",
        "Messages per day, by sender",
        {
            "data": data,
            "layout": _layout(
                height=legend_room(len(data)),
                barmode="stack",
                xaxis=DAY_AXIS,
                yaxis={"title": {"text": "messages"}},
                legend={**LEGEND, "traceorder": "normal"},
            ),
        },
    )


DAY_AXIS = {  # days as dates: Plotly thins the labels to fit, each keeps its day
    "type": "date",
    "tickformat": "%b %d",
    "hoverformat": "%Y-%m-%d",
    "automargin": True,
}


def log_colours(counts: list[list[int]]) -> tuple[list[list[float]], list[float], list[str]]:
    """Counts as colour values on a log scale, log10(1 + n), with the colour bar's ticks
    (where, and the counts they stand for): 0 stays the palest, one message is already
    a fifth of the way up from 23, and one hour of 1,000 does not pale all the others."""
    top = max((n for row in counts for n in row), default=0)
    values = [[round(math.log10(1 + n), 4) for n in row] for row in counts]
    ticks = [0]
    step = 0
    while True:
        tick = (1, 2, 5)[step % 3] * 10 ** (step // 3)
        if tick > top:
            break
        ticks.append(tick)
        step += 1
    return values, [round(math.log10(1 + t), 4) for t in ticks], [f"{t:,}" for t in ticks]


def weekday_hour(stats: Stats) -> Chart:
    z, tickvals, ticktext = log_colours(stats.weekday_hour)
    top = max((n for row in stats.weekday_hour for n in row), default=0)
    data = [
        {
            "type": "heatmap",
            "name": "messages",
            "x": [f"{h:02d}" for h in range(24)],
            "xgap": 1,
            "ygap": 1,
            "y": list(WEEKDAYS),
            "z": z,
            "zmin": 0,
            "zmax": round(math.log10(1 + max(top, 1)), 4),
            "customdata": stats.weekday_hour,
            "colorscale": [[0, "#f4f7fb"], [0.25, "#9ecae1"], [1, "#08306b"]],
            "colorbar": {
                "title": {"text": "messages<br>(log scale)", "side": "top"},
                "tickvals": tickvals,
                "ticktext": ticktext,
                "thickness": 14,
            },
            "hovertemplate": "%{y} %{x}:00: %{customdata} messages<extra></extra>",
        }
    ]
    layout = _layout(
        yaxis={"autorange": "reversed"},
        xaxis={"title": {"text": "hour of day"}, "type": "category"},
    )
    return Chart(
        "week-hour",
        "When the team is busy: hour of day by weekday",
        {"data": data, "layout": layout},
    )


def who_talks(stats: Stats) -> Chart:
    senders = sorted({who(p.sender, p.room) for p in stats.pairs})
    receivers = sorted({who(p.to, p.room) for p in stats.pairs})
    counts = {(who(p.sender, p.room), who(p.to, p.room)): p.messages for p in stats.pairs}
    data = [
        {
            "type": "heatmap",
            "name": "direct messages",
            "x": [label(r) for r in receivers],
            "y": [label(s) for s in senders],
            "z": [[counts.get((s, r), 0) for r in receivers] for s in senders],
            "colorscale": "Viridis",
            "colorbar": {"title": {"text": "messages", "side": "top"}, "thickness": 14},
            "hovertemplate": "%{y} → %{x}: %{z} messages<extra></extra>",
        }
    ]
    layout = _layout(
        xaxis={"title": {"text": "to"}, "type": "category"},
        yaxis={"title": {"text": "from"}, "type": "category", "autorange": "reversed"},
    )
    return Chart("pairs", "Who talks to whom (direct messages)", {"data": data, "layout": layout})


def response_times(stats: Stats) -> Chart:
    labels = [name for _, name in BUCKETS]
    colours = agent_colours(stats)
    data = [
        {
            "type": "bar",
            "name": label(who(r.responder, r.room)),
            "marker": {"color": colours.get(who(r.responder, r.room), PALETTE[0])},
            "x": labels,
            "y": r.buckets,
            "customdata": [[duration(r.median), duration(r.p90), r.count]] * len(labels),
            "hovertemplate": (
                "%{fullData.name}: %{y} answers in %{x}<br>"
                "median %{customdata[0]}, p90 %{customdata[1]} (of %{customdata[2]})"
                "<extra></extra>"
            ),
        }
        for r in stats.responses
    ]
    layout = _layout(
        height=legend_room(len(data)),
        barmode="group",
        xaxis={"title": {"text": "time to answer"}, "type": "category"},
        yaxis={"title": {"text": "answers"}},
    )
    return Chart("responses", "Response times per responder", {"data": data, "layout": layout})


def task_timeline(stats: Stats) -> Chart:
    tasks = [t for t in stats.tasks if t.first is not None and t.last is not None]
    shown = sorted(tasks, key=lambda t: (-t.messages, t.task_id, t.room or ""))[:MAX_TASKS]
    shown.sort(key=lambda t: (t.first or "", t.task_id, t.room or ""))
    names = [label(who(t.task_id, t.room)) for t in shown]
    custom = [
        [t.first, t.last, duration(t.span_seconds), t.messages, label(", ".join(t.agents))]
        for t in shown
    ]
    hover = (
        "%{y}: %{customdata[3]} messages, %{customdata[2]}<br>"
        "%{customdata[0]} → %{customdata[1]}<br>%{customdata[4]}<extra></extra>"
    )
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": "first to last message",
            "marker": {"color": "#2e91e5"},
            "y": names,
            "base": [t.first for t in shown],
            "x": [(t.span_seconds or 0) * 1000 for t in shown],
            "customdata": custom,
            "hovertemplate": hover,
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "first message",
            "marker": {"color": "#eb663b", "size": 7},
            "y": names,
            "x": [t.first for t in shown],
            "customdata": custom,
            "hovertemplate": hover,
        },
    ]
    title = "Task timeline: first to last message"
    if len(tasks) > len(shown):
        title += f" ({len(shown)} busiest of {len(tasks)} tasks)"
    layout = _layout(
        height=max(240, 100 + 22 * len(shown)),
        xaxis={"type": "date"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return Chart("tasks", title, {"data": data, "layout": layout})


# A thread's length in messages, in classes: each up to ten, then wider ones.
LENGTHS: tuple[tuple[float, str], ...] = (
    *((n, str(n)) for n in range(2, 11)),
    (20, "11-20"),
    (50, "21-50"),
    (100, "51-100"),
    (math.inf, "> 100"),
)
# Short to long: pale to dark; a single reply (no span to speak of) and no date: greys.
SPAN_COLOURS = ("#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b")
ONE_REPLY = ("one reply", "#b8bec6")
NOT_DATED = ("not dated", "#e3c08a")


def thread_lengths(stats: Stats) -> Chart:
    """Every thread (the table lists only the ten longest): how many have each length,
    and how long each went on, first reply to last, as stacks (a thread of two messages
    has one reply: a stack of its own)."""
    by_length = stats.threads.by_length
    longest = max(by_length, default=2)
    classes = LENGTHS[: next(i for i, (upper, _) in enumerate(LENGTHS) if longest <= upper) + 1]
    names = [name for _, name in classes]
    counts = [[0] * len(classes) for _ in range(len(THREAD_SPANS) + 2)]
    for length, spans in by_length.items():
        column = next(i for i, (upper, _) in enumerate(classes) if length <= upper)
        if length == 2:
            counts[-1][column] += sum(spans)
            continue
        for span, threads in enumerate(spans):
            counts[span][column] += threads
    stacks = [
        *(
            (name, colour, f"%{{y}} threads of %{{x}} messages: {name} first to last reply")
            for (_, name), colour in zip(THREAD_SPANS, SPAN_COLOURS, strict=True)
        ),
        (*NOT_DATED, "%{y} threads of %{x} messages, replies not dated"),
        (*ONE_REPLY, "%{y} threads of 2 messages: one reply"),
    ]
    order = [len(stacks) - 1, *range(len(stacks) - 1)]  # one reply first: it is the shortest
    data = [
        {
            "type": "bar",
            "name": stacks[i][0],
            "marker": {"color": stacks[i][1]},
            "x": names,
            "y": counts[i],
            "hovertemplate": stacks[i][2] + "<extra></extra>",
        }
        for i in order
        if any(counts[i])
    ]
    layout = _layout(
        barmode="stack",
        xaxis={"title": {"text": "messages in the thread"}, "type": "category"},
        yaxis={"title": {"text": "threads"}},
        legend={
            **LEGEND,
            "traceorder": "normal",
            "title": {"text": "first to last reply", "side": "top"},
        },
    )
    return Chart(
        "threads",
        "Threads by length, and how long they went on",
        {"data": data, "layout": layout},
    )


def all_charts(stats: Stats) -> list[Chart]:
    """The six charts, in the order the report shows them."""
    return [
        messages_per_day(stats),
        weekday_hour(stats),
        who_talks(stats),
        response_times(stats),
        task_timeline(stats),
        thread_lengths(stats),
    ]
