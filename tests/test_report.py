"""``report``: the HTML file in a real headless Chromium, and its refusals.

The log directory is a simulated team's fortnight (``serverdb.simulate_team``) written
by the real logger; the page is made by the real ``dead-drop-logger report`` command
and opened from disk in Chromium driven over the DevTools protocol (tests/browser.py),
which reports every request, console message and script error.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path

import pytest
import serverdb
from browser import Browser, chromium
from click.testing import CliRunner
from conftest import faked, log_with_real_logger, run_command

from dead_drop_logger.control.cli import cli
from dead_drop_logger.read import report
from dead_drop_logger.read.stats import StatsBuilder

needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (.ci/run installs it)"
)

ENV = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}

# What must be drawn in each chart, as CSS selectors of Plotly's marks.
MARKS = {
    "chart-per-day": ".trace.bars .point path",
    "chart-week-hour": ".hm image",
    "chart-pairs": ".hm image",
    "chart-responses": ".trace.bars .point path",
    "chart-tasks": ".trace.bars .point path",
    "chart-threads": ".trace.bars .point path",
}


@pytest.fixture(scope="module")
def team_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    db, log_dir = root / "messages.db", root / "logs"
    serverdb.create(db)
    serverdb.simulate_team(db, dt.datetime(2026, 2, 2), days=14)
    log_with_real_logger(db, log_dir)
    out = root / "team.html"
    clock = faked("2026-03-01 12:00:00")  # the page says when it was made
    done = run_command("report", "--log-dir", str(log_dir), "-o", str(out), env=ENV | clock)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(f"wrote {out} (") and done.stderr.endswith(" bytes)\n")
    return out


def test_report_file_is_private_and_self_contained(team_report: Path) -> None:
    assert team_report.stat().st_mode & 0o777 == 0o600
    page = team_report.read_text()
    # Message text is escaped: a '<script>' in a message is text, not markup.
    assert "&lt;script&gt;" in page
    assert page.count("<script") == 2  # Plotly.js, then the charts
    assert "cdn.plot.ly/plotly" not in page.split("<script>", 1)[0]
    assert '; generated <time datetime="2026-03-01T12:' in page  # the command's clock


@needs_chromium
def test_report_renders_offline_in_chromium(team_report: Path) -> None:
    with Browser(width=1280) as browser:
        log = browser.open(team_report)
        assert log.errors == []
        assert [u for u in log.requests if not u.startswith("data:")] == [team_report.as_uri()]
        drawn = browser.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('.plot')).map(d =>"
            " [d.id, {svg: d.querySelectorAll('svg.main-svg').length,"
            "  marks: d.querySelectorAll(MARKS[d.id]).length}]))".replace("MARKS", repr(MARKS))
        )
        assert set(drawn) == set(MARKS)
        for chart, found in drawn.items():
            assert found["svg"] >= 1 and found["marks"] >= 1, (chart, found)
        # The stats numbers are on the page; no message text became a link.
        cards = browser.evaluate(
            "Array.from(document.querySelectorAll('.card')).map(c => c.innerText)"
        )
        assert any(c.endswith("messages") for c in cards)
        assert (
            browser.evaluate("document.querySelectorAll('a[href*=\"example.test\"]').length") == 0
        )
        # Hover gives the values: the first bar of the first sender's day.
        hover = browser.evaluate(
            "(() => { const d = document.getElementById('chart-per-day');"
            " Plotly.Fx.hover(d, [{curveNumber: 0, pointNumber: 0}]);"
            " return d.querySelector('.hoverlayer').textContent; })()"
        )
        assert "2026-02-02:" in hover and "messages" in hover
        assert log.errors == []
        # Every mark has its legend: an entry per trace, a title on every colour bar.
        legends = browser.evaluate(LEGENDS)
        assert set(legends) == set(MARKS)
        for chart, found in legends.items():
            assert found["entries"] == found["traces"] > 0 or found["heatmaps"], (chart, found)
            assert len(found["bars"]) == found["heatmaps"] and all(found["bars"]), (chart, found)


# Per chart: its traces (heatmaps apart), the legend's entries, its colour bars' titles.
LEGENDS = """Object.fromEntries(Array.from(document.querySelectorAll('.plot')).map(d => [d.id, {
  traces: d.data.filter(t => t.type !== 'heatmap').length,
  heatmaps: d.data.filter(t => t.type === 'heatmap').length,
  entries: d.querySelectorAll('.legend .traces').length,
  bars: Array.from(d.querySelectorAll('.colorbar')).map(c =>
    (c.querySelector('.cbtitle') || {textContent: ''}).textContent)}]))"""

# Every element that shows (a part of it on screen) and reaches past the screen's edges.
TOO_WIDE = """Array.from(document.querySelectorAll('body *')).filter(e => {
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.right > 0 && (r.left < -0.5 || r.right > innerWidth + 0.5);
}).map(e => e.tagName + '.' + e.getAttribute('class') + ' '
  + Math.round(e.getBoundingClientRect().right))"""

# Each chart's height as drawn, and the height its figure asks for (its box's).
HEIGHTS = """Array.from(document.querySelectorAll('.plot')).map(d =>
  [d.id, Math.round(d.querySelector('svg.main-svg').getBoundingClientRect().height),
   parseInt(d.style.height)])"""


# Whether every chart was redrawn at its box's new width (polled, up to 50 s).
REDRAWN = """new Promise(done => { const end = Date.now() + 50000; (function check() {
  const ok = Array.from(document.querySelectorAll('.plot')).every(d => Math.abs(
    d.querySelector('svg.main-svg').getBoundingClientRect().width - d.clientWidth) < 1);
  if (ok || Date.now() > end) done(ok); else setTimeout(check, 100); })(); })"""


def fits(browser: Browser) -> None:
    """Nothing on the page is wider than the screen: no sideways scrolling, no element
    reaching past the edge (tables included), every chart as tall as its figure."""
    assert browser.evaluate("window.innerWidth") == 390
    assert browser.evaluate("document.documentElement.scrollWidth") <= 390
    assert browser.evaluate(TOO_WIDE) == []
    for chart, height, wanted in browser.evaluate(HEIGHTS):
        assert height == wanted, (chart, height, wanted)


@needs_chromium
def test_report_fits_a_phone(team_report: Path) -> None:
    with Browser(width=390, height=844) as browser:
        browser.set_width(390, 844, mobile=True)
        log = browser.open(team_report)
        assert log.errors == []
        fits(browser)
        width = browser.evaluate("window.innerWidth")
        widths = browser.evaluate(
            "Array.from(document.querySelectorAll('.chart svg.main-svg'))"
            ".map(s => s.getBoundingClientRect().right)"
        )
        assert widths and max(widths) <= width
        # Each day's label keeps its day (not "2026-02" cut short), fully inside its chart.
        ticks = browser.evaluate(
            "Array.from(document.querySelectorAll('#chart-per-day .xtick text'))"
            ".map(t => [t.textContent, t.getBoundingClientRect().bottom,"
            " t.closest('.chart').getBoundingClientRect().bottom])"
        )
        assert len(ticks) >= 3, ticks
        for text, bottom, chart_bottom in ticks:
            assert re.fullmatch(r"[A-Z][a-z]{2} \d{2}", text), ticks
            assert bottom <= chart_bottom, ticks
        # The toolbar sits above the plot: it covers no bar of the busiest threads.
        overlap = browser.evaluate(
            "(() => { const d = document.getElementById('chart-threads');"
            " const bar = d.querySelector('.modebar').getBoundingClientRect();"
            " const plot = d.querySelector('.nsewdrag').getBoundingClientRect();"
            " return bar.bottom - plot.top; })()"
        )
        assert overlap <= 0
        # Turned sideways and back: every chart is redrawn at its own height, not squashed.
        for width, height in ((844, 390), (390, 844)):
            browser.set_width(width, height, mobile=True)
            assert browser.evaluate(REDRAWN), width
        fits(browser)
        assert log.errors == []


def rooms_of_sixteen() -> StatsBuilder:
    """Two rooms of eight agents each, long room names, one very busy hour."""
    builder = StatsBuilder(rooms=True)
    rooms = ("ops", "research-and-development")
    for n in range(1600):
        room, sender, to = rooms[n % 2], f"agent-{n // 2 % 8}", f"agent-{(n // 2 + 1) % 8}"
        day, hour = 2 + n % 14, 8 + n % 11
        builder.add(
            {"id": n, "from_agent": sender, "to_agent": to, "is_cc": 0,
             "timestamp": f"2026-03-{day:02d}T{hour:02d}:{n % 60:02d}:00",
             "task_id": f"T-{n % 40}", "reply_to": n - 2 if n % 3 else None},
            room,
        )  # fmt: skip
    return builder


@needs_chromium
def test_a_rooms_report_of_sixteen_agents_fits_a_phone(tmp_path: Path) -> None:
    """16 agents with their rooms in every name: wider tables, longer legends."""
    stats = rooms_of_sixteen().result()
    assert len(stats.agents) == 16
    page = tmp_path / "rooms.html"
    page.write_text(report.render(stats, "Sixteen agents in two rooms", "rooms"))
    with Browser(width=390, height=844) as browser:
        browser.set_width(390, 844, mobile=True)
        log = browser.open(page)
        assert log.errors == []
        fits(browser)
        legends = browser.evaluate(LEGENDS)
        assert legends["chart-per-day"]["entries"] == 16


def test_report_without_plotly_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly.offline", None)  # import fails, as uninstalled
    result = CliRunner().invoke(cli, ["report", "--log-dir", str(tmp_path), "-o", "x.html"])
    assert result.exit_code == 2
    # This copy is installed from the checkout: the hint names it, not a package no
    # index has, and this environment's Python, not a system pip.
    root = Path(__file__).resolve().parent.parent
    assert result.stderr == (
        "dead-drop-logger: error: report needs Plotly:"
        f" {sys.executable} -m pip install '{root}[report]'\n"
    )
    assert not (tmp_path / "x.html").exists()


def test_report_to_stdout(team_report: Path, tmp_path: Path) -> None:
    """``-o -`` is stdout (a pipe), never a file named "-"."""
    log_dir = team_report.parent / "logs"
    done = run_command("report", "--log-dir", str(log_dir), "-o", "-", env=ENV, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("<!DOCTYPE html>") and done.stdout.endswith("</html>\n")
    assert not (tmp_path / "-").exists()


def test_report_to_an_unwritable_path_is_one_line(team_report: Path, tmp_path: Path) -> None:
    log_dir = team_report.parent / "logs"
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = blocker / "report.html"
    done = run_command("report", "--log-dir", str(log_dir), "-o", str(out), env=ENV)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dead-drop-logger: error: cannot write {out}: Not a directory\n"


def test_the_hint_of_an_install_sh_installation_names_install_sh(tmp_path: Path) -> None:
    from dead_drop_logger.installed import MARKER, install_extra

    (tmp_path / MARKER).write_text("/home/me/dead-drop-logger\n")
    assert install_extra("report", prefix=tmp_path) == (
        "/home/me/dead-drop-logger/install.sh (run again: it installs the report extra)"
    )
