"""``report``: one self-contained HTML file with the numbers of ``stats`` and six charts.

Why Plotly (an optional extra, the ``report`` extra; install.sh installs it): it is a
well-kept charting library whose Python package ships Plotly.js, so the page can carry
the library inline and open from disk with no network, with hover values, zoom and
phone-width layouts built in. Only this command needs it, so the daemon never imports it.

What keeps the page offline: every script and style is inline; no MathJax, no web font,
no map tiles (no chart here uses them); Plotly's logo link and "edit in cloud" are off;
and a Content-Security-Policy allows nothing to be fetched, so even a future Plotly
that tried would be stopped. What keeps it small: the charts carry aggregates only
(:mod:`charts`), so its size is Plotly.js (about 4.8 MB) plus tens of kilobytes.
Text from messages is HTML-escaped everywhere, so a message cannot add markup or links.

What keeps it readable on a phone (390 px): nothing is wider than the screen. Charts take
the page's width (each in a box of its own figure's height, so a resize or a turned phone
redraws it at that height instead of squashing it); a table of more than four columns
(or with rooms' names) becomes one block per row below 600 px, each cell after its
column's name, and any other table wraps its cells, long names and all. The page says
when it was made (from an injectable clock, so tests know the text).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..clock import Clock, SystemClock
from ..files import open_private, write_all
from ..installed import install_extra
from . import charts, stats_format
from .logread import LogDir
from .stats import Stats
from .stats import fill_previews as stats_previews
from .stats_format import when

MAX_TASK_ROWS = 1000  # the page stays the size of the aggregates, whatever the logs hold
PLOTLY_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "showLink": False,
    "showEditInChartStudio": False,
    "showSendToCloud": False,
    "displayModeBar": "hover",
}
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 12px 16px 40px; color: #1d2530;
       background: #fafbfc; }
h1 { font-size: 1.5em; margin: 0.4em 0 0.1em; }
h2 { font-size: 1.15em; margin: 1.6em 0 0.4em; }
.sub { color: #5b6675; margin: 0 0 1em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr));
         gap: 8px; }
.card { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 8px 10px; }
.card b { display: block; font-size: 1.35em; }
.card span { color: #5b6675; font-size: 0.85em; }
summary { cursor: pointer; color: #5b6675; margin: 0.3em 0; }
h1, .sub { overflow-wrap: anywhere; }
.chart { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 4px;
         width: 100%; box-sizing: border-box; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; background: #fff; font-size: 0.92em; }
th, td { border-bottom: 1px solid #e6eaef; padding: 4px 10px; text-align: left;
         white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.p { white-space: normal; min-width: 16em; overflow-wrap: anywhere; }
@media (max-width: 600px) {
  body { padding: 8px; font-size: 14px; }
  th, td { white-space: normal; overflow-wrap: anywhere; }
  table.wide, .wide tbody, .wide tr { display: block; }
  .wide thead { display: none; }
  .wide tr { border-bottom: 1px solid #e6eaef; padding: 5px 8px; }
  .wide td { display: inline-block; border: 0; padding: 1px 12px 1px 0;
             white-space: normal; overflow-wrap: anywhere; min-width: 0; }
  .wide td::before { content: attr(data-label) " "; color: #5b6675; }
  .wide td:first-child { display: block; font-weight: 600; }
  .wide td:first-child::before { content: none; }
  .wide td.p { display: block; }
}
"""


class ReportUnavailable(Exception):
    """Plotly is not installed."""


class ReportWriteError(Exception):
    """The output file cannot be written (the message is fit for the user)."""


def plotly_js() -> str:
    """Plotly.js itself, from the installed Plotly package."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ReportUnavailable(f"report needs Plotly: {install_extra('report')}") from None
    return str(get_plotlyjs())


def script_json(value: object) -> str:
    """JSON that is safe inside a <script> element whatever strings it holds."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _e(value: object) -> str:
    return html.escape("-" if value is None else str(value))


WIDE_TABLE = 5  # columns from which a table is one block per row on a phone (or a room's)


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], prose: int | None = None
) -> Iterator[str]:
    """A table; ``prose``: the column of message text (it wraps, and has a line of its
    own on a phone)."""
    numeric = stats_format.numeric_columns(rows) or [False] * len(headers)

    def cell(tag: str, i: int, value: object) -> str:
        kind = ' class="p"' if i == prose else ' class="n"' if numeric[i] else ""
        name = f' data-label="{_e(headers[i])}"' if tag == "td" else ""
        return f"<{tag}{kind}{name}>{_e(value)}</{tag}>"

    wide = ' class="wide"' if len(headers) >= WIDE_TABLE or "room" in headers else ""
    yield f'<div class="scroll"><table{wide}><thead><tr>'
    yield "".join(cell("th", i, head) for i, head in enumerate(headers))
    yield "</tr></thead><tbody>"
    for row in rows:
        yield "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
    yield "</tbody></table></div>"


def _numbers(stats: Stats) -> Iterator[str]:
    t = stats.totals
    cards = [
        ("messages", t.messages),
        ("agents", t.agents),
        ("days", t.days),
        ("direct", t.direct),
        ("broadcasts", t.broadcasts),
        ("CC copies", t.cc_copies),
        *stats_format.undated(stats),
        ("threads", stats.threads.count),
        ("tasks", len(stats.tasks)),
    ]
    yield '<div class="cards">'
    for name, value in cards:
        yield f'<div class="card"><b>{value:,}</b><span>{_e(name)}</span></div>'
    yield "</div>"
    yield "<h2>Agents</h2>"
    yield from _table(*stats_format.agent_rows(stats))
    yield f"<h2>Who talks to whom (top {stats_format.TOP_PAIRS})</h2>"
    yield from _table(
        ("from", *stats_format.headers_with_room(stats, "to", "messages")),
        [
            (p.sender, p.to, *stats_format.room_cell(stats, p.room), p.messages)
            for p in stats.pairs[: stats_format.TOP_PAIRS]
        ],
    )
    yield "<h2>Response times</h2>"
    yield (
        '<p class="sub">For a direct message from A to B: the time until B\'s next message'
        " to A, or B's first message replying to it, whichever comes first, within 24 h.</p>"
    )
    yield from _table(*stats_format.response_rows(stats))
    yield "<h2>Threads</h2>"
    summary = "; ".join(f"{name} {value}" for name, value in stats_format.thread_summary(stats))
    yield f'<p class="sub">{_e(summary)}; messages without a task {stats.without_task:,}.</p>'
    th = stats.threads
    headers = stats_format.headers_with_room(
        stats, "thread", "messages", "first reply", "last reply", "first message"
    )
    yield from _table(
        headers,
        [
            (
                f"#{r.root}",
                *stats_format.room_cell(stats, r.room),
                r.length,
                when(r.first),
                when(r.last),
                charts.preview(r.preview),
            )
            for r in th.busiest
        ],
        prose=len(headers) - 1,
    )
    yield "<h2>Tasks</h2>"
    shown = min(len(stats.tasks), MAX_TASK_ROWS)
    more = f" (the first {shown} by first message)" if shown < len(stats.tasks) else ""
    yield f"<details><summary>{len(stats.tasks):,} tasks{more}</summary>"
    yield from _table(*stats_format.task_rows(stats, MAX_TASK_ROWS))
    yield "</details>"


def fill_previews(stats: Stats, sources: Sequence[LogDir], *, utc: bool = False) -> None:
    """The busiest threads' previews as the page shows them: ``stats``' own, with a
    root sealed per agent shown as ``search`` shows it, not "(first message not in the
    logs read)": the page is read by people, as ``search``'s text is."""
    stats_previews(stats, sources, utc=utc, opened=True)


def generated(clock: Clock) -> str:
    """When the page was made, in the local zone: ``<time>`` with the exact instant."""
    now = clock.now()
    shown = now.strftime("%Y-%m-%d %H:%M ") + (now.strftime("%Z") or now.strftime("%z"))
    return f'generated <time datetime="{now.isoformat(timespec="seconds")}">{_e(shown)}</time>'


def render(stats: Stats, title: str, subtitle: str, clock: Clock | None = None) -> str:
    """The whole page; ``clock``: when it was made (default: now)."""
    figures = charts.all_charts(stats)
    made = generated(clock or SystemClock())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(subtitle)}; {made}</p>',
    ]
    parts.extend(_numbers(stats))
    for chart in figures:
        parts.append(f"<h2>{_e(chart.title)}</h2>")
        height = chart.figure["layout"]["height"]
        parts.append(
            f'<div class="chart"><div class="plot" id="chart-{chart.key}"'
            f' style="height:{height}px"></div></div>'
        )
    parts.append(f"<script>{plotly_js()}</script>")
    specs = {chart.key: chart.figure for chart in figures}
    parts.append(
        "<script>(function(){var specs="
        + script_json(specs)
        + ";var config="
        + script_json(PLOTLY_CONFIG)
        + ";Object.keys(specs).forEach(function(key){var s=specs[key];"
        + "Plotly.newPlot('chart-'+key,s.data,s.layout,config);});})();</script>"
    )
    from .taskcharts import section  # the task log's section, drawn by its own script

    parts.extend(section(stats, PLOTLY_CONFIG))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write(path: Path, page: str) -> int:
    """Write the page to ``path`` (0600: it quotes private messages) via a temporary
    file renamed over it; the number of bytes written."""
    data = page.encode("utf-8")
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise ReportWriteError(f"cannot write {path}: {exc.strerror}") from None
    return len(data)
