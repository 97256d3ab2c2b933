"""The report's six charts, as plain Plotly figure specs built from :class:`stats.Stats`.

Why plain dicts: the specs are data (traces and layout as Plotly.js takes them), so
tests check what each chart shows without a browser or even Plotly installed, and the
report stays the size of the aggregated numbers whatever the number of messages: no
chart carries one point per message. Text that came from messages (thread previews,
names) is escaped so Plotly's hover labels cannot turn it into markup or links. When
rooms were read, names, tasks and thread roots carry their room (``juno [ops]``), so two
rooms' ``juno`` or ``#12`` are two bars, never one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..durations import duration
from .responses import BUCKETS
from .stats import Stats, who
from .stats_format import WEEKDAYS

MAX_TASKS = 50
PREVIEW_CHARS = 120
Figure = dict[str, Any]
# One colour per agent across every chart (Plotly's ten, then D3's): the busiest agents
# get the first; past twenty agents the colours repeat.
PALETTE = (
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692",
    "#b6e880", "#ff97ff", "#fecb52", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
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


def _layout(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "autosize": True,
        "height": 380,
        # the top margin holds the toolbar (shown on hover), so it covers no bar
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        "hoverlabel": {"namelength": -1},
    }
    base.update(extra)
    return base


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
        {"data": data, "layout": _layout(barmode="stack", xaxis=DAY_AXIS)},
    )


DAY_AXIS = {  # days as dates: Plotly thins the labels to fit, each keeps its day
    "type": "date",
    "tickformat": "%b %d",
    "hoverformat": "%Y-%m-%d",
    "automargin": True,
}


def weekday_hour(stats: Stats) -> Chart:
    data = [
        {
            "type": "heatmap",
            "x": [f"{h:02d}" for h in range(24)],
            "xgap": 1,
            "ygap": 1,
            "y": list(WEEKDAYS),
            "z": stats.weekday_hour,
            "colorscale": [[0, "#f4f7fb"], [1, "#08306b"]],
            "hovertemplate": "%{y} %{x}:00: %{z} messages<extra></extra>",
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
            "x": [label(r) for r in receivers],
            "y": [label(s) for s in senders],
            "z": [[counts.get((s, r), 0) for r in receivers] for s in senders],
            "colorscale": "Viridis",
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
            "name": "span",
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
        height=max(240, 60 + 22 * len(shown)),
        showlegend=False,
        xaxis={"type": "date"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return Chart("tasks", title, {"data": data, "layout": layout})


def busiest_threads(stats: Stats) -> Chart:
    rows = stats.threads.busiest
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "y": [label(who(f"#{r.root}", r.room)) for r in rows],
            "x": [r.length for r in rows],
            "customdata": [[label(preview(r.preview))] for r in rows],
            "hovertemplate": "%{y}: %{x} messages<br>%{customdata[0]}<extra></extra>",
        }
    ]
    layout = _layout(
        height=max(240, 60 + 26 * len(rows)),
        yaxis={"type": "category", "autorange": "reversed"},
        xaxis={"title": {"text": "messages in the thread"}},
    )
    return Chart("threads", "Busiest threads", {"data": data, "layout": layout})


def all_charts(stats: Stats) -> list[Chart]:
    """The six charts, in the order the report shows them."""
    return [
        messages_per_day(stats),
        weekday_hour(stats),
        who_talks(stats),
        response_times(stats),
        task_timeline(stats),
        busiest_threads(stats),
    ]
