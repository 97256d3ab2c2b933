"""The report's task section: a board of open tasks by status, a cycle-time chart and a
throughput chart, with the task figures of ``stats`` as cards.

Why its own module: the report's other charts (:mod:`.charts`) are of messages; these
are of the recorded task log (:mod:`.taskstats`), and the report only adds this section
at one place. As there, the charts are plain Plotly specs built from plain data, so
tests check what they show without a browser; text from the logs (titles, names) is
HTML-escaped in the page and in the charts' labels. The section draws its own charts in
its own script, after the page has loaded Plotly.js.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

from ..durations import duration
from ..server import TASK_STATUSES as STATUSES
from .charts import Chart, _layout, label
from .stats import Stats, who
from .tasklog import OPEN
from .taskstats import Card, Rate, Spread, TaskFigures

BOARD_CARDS = 30  # per column: the longest in their status; the rest are counted
COLUMNS = tuple(s for s in STATUSES if s in OPEN)


def board(figures: TaskFigures) -> dict[str, list[Card]]:
    """The open tasks per status column, the longest in their status first."""
    columns: dict[str, list[Card]] = {status: [] for status in COLUMNS}
    for card in figures.board:
        columns[card.status].append(card)
    for cards in columns.values():
        cards.sort(key=lambda c: (-(c.in_status_seconds or 0.0), c.task))
    return columns


def cycle_times(figures: TaskFigures) -> Chart:
    """Each completed task's assigned -> completed time at its completion (a control
    chart), with the p50 and p90 lines."""
    points = figures.cycles
    hours = [p.seconds / 3600 for p in points]
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "task",
            "x": [p.completed for p in points],
            "y": hours,
            "text": [label(who(p.task, p.room)) for p in points],
            "customdata": [duration(p.seconds) for p in points],
            "hovertemplate": "%{text}: %{customdata}<br>completed %{x}<extra></extra>",
        }
    ]
    spread = figures.cycle_assigned_to_completed
    for name, value in (("p50", spread.p50), ("p90", spread.p90)):
        if value is not None and points:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{name} {duration(value)}",
                    "x": [points[0].completed, points[-1].completed],
                    "y": [value / 3600, value / 3600],
                    "hoverinfo": "skip",
                }
            )
    layout = _layout(
        xaxis={"type": "date"}, yaxis={"title": {"text": "hours"}, "rangemode": "tozero"}
    )
    return Chart(
        "task-cycle",
        f"Cycle time, assigned → completed ({spread.n} tasks)",
        {"data": data, "layout": layout},
    )


def throughput(figures: TaskFigures) -> Chart:
    days = list(figures.throughput_per_day)
    data = [
        {
            "type": "bar",
            "name": "completed",
            "x": days,
            "y": [figures.throughput_per_day[d] for d in days],
            "hovertemplate": "%{x}: %{y} completed<extra></extra>",
        }
    ]
    total = sum(figures.throughput_per_day.values())
    layout = _layout(xaxis={"type": "date"}, yaxis={"rangemode": "tozero", "dtick": 1})
    return Chart(
        "task-throughput", f"Tasks completed per day ({total})", {"data": data, "layout": layout}
    )


def charts(figures: TaskFigures) -> list[Chart]:
    return [cycle_times(figures), throughput(figures)]


def _e(value: object) -> str:
    return html.escape("-" if value is None else str(value))


def _rate(r: Rate) -> str:
    return "n/a" if r.value is None else f"{r.value:.0%}"


def _spread(s: Spread) -> str:
    return "n/a" if s.p50 is None else duration(s.p50)


def cards(f: TaskFigures) -> list[tuple[str, str]]:
    """The headline figures, each with the number of tasks it rests on."""
    return [
        ("tasks created", f"{f.created:,}"),
        (f"completed ({f.verified:,} verified)", f"{f.completed:,}"),
        ("failed", f"{f.failed:,}"),
        ("still open", f"{f.open:,}"),
        (f"completion rate, of {f.completion_rate.n:,}", _rate(f.completion_rate)),
        (f"failure rate, of {f.failure_rate.n:,}", _rate(f.failure_rate)),
        (f"first-pass yield, of {f.first_pass_yield.n:,}", _rate(f.first_pass_yield)),
        (f"reworks ({f.verification_rejections:,} in verification)", f"{f.reworks:,}"),
        (
            f"cycle p50, of {f.cycle_assigned_to_completed.n:,}",
            _spread(f.cycle_assigned_to_completed),
        ),
        (
            f"to verified p50, of {f.cycle_completed_to_verified.n:,}",
            _spread(f.cycle_completed_to_verified),
        ),
    ]


def _script(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


STYLE = (
    ".board{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:8px}"
    ".board section{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:6px}"
    ".board h3{font-size:.95em;margin:.2em 0 .4em}"
    ".board p{margin:.3em 0;padding:4px 6px;background:#f3f5f8;border-radius:6px;"
    "font-size:.88em;white-space:normal}"
    ".board small{color:#5b6675;display:block}"
)


def section(stats: Stats, config: dict[str, Any]) -> Iterator[str]:
    """The task section's HTML (nothing when no task log was read); ``config`` is the
    report's Plotly config."""
    f = stats.task_figures
    if f is None:
        return
    yield f"<style>{STYLE}</style>"
    yield "<h2>Tasks: lifecycle</h2>"
    end = f.end[:16].replace("T", " ")
    yield f'<p class="sub">From the recorded task changes; open work up to {_e(end)}.</p>'
    yield '<div class="cards">'
    for name, value in cards(f):
        yield f'<div class="card"><b>{_e(value)}</b><span>{_e(name)}</span></div>'
    yield "</div>"
    yield "<h2>Open tasks</h2>"
    yield '<div class="board">'
    for status, column in board(f).items():
        yield f"<section><h3>{_e(status)} ({len(column):,})</h3>"
        for card in column[:BOARD_CARDS]:
            yield (
                f"<p>{_e(who(card.task, card.room))} {_e(card.title)}"
                f"<small>{_e(card.assignee)} · {_e(duration(card.in_status_seconds))}</small></p>"
            )
        if len(column) > BOARD_CARDS:
            yield f"<small>and {len(column) - BOARD_CARDS:,} more</small>"
        yield "</section>"
    yield "</div>"
    figures = charts(f)
    for chart in figures:
        yield f"<h2>{_e(chart.title)}</h2>"
        yield f'<div class="chart" id="chart-{chart.key}"></div>'
    specs = {chart.key: chart.figure for chart in figures}
    yield (
        "<script>(function(){var specs="
        + _script(specs)
        + ";var config="
        + _script(config)
        + ";Object.keys(specs).forEach(function(key){var s=specs[key];"
        + "Plotly.newPlot('chart-'+key,s.data,s.layout,config);});})();</script>"
    )
