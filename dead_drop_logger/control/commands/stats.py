"""``stats`` and ``report``: what the agents did, in numbers, as text, JSON or one
HTML page (both read the same figures)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import options
from . import common

if TYPE_CHECKING:
    from ...read.logread import Reader
    from ...read.stats import Stats


def _read_stats(
    log_dir: Path, rooms: tuple[str, ...], since: str | None, until: str | None, utc: bool
) -> tuple[Stats, Reader]:
    """The numbers of a log directory's window (and the reader that read them); no
    messages is one line and exit 1, an unreadable directory exit 2 (as search does).
    A file that cannot be read is a warning: the caller prints the numbers of the
    others, then exits 2."""
    from ...read import statlines, taskpending  # the statistics' modules: only for stats, report
    from ...read.logread import LogReadError
    from ...read.tasklog import merge_problems
    from ...read.when import local_now

    reader = common.reader(log_dir, since, until, utc, rooms)
    try:
        pending = taskpending.Pending(reader, local_now())  # the task log, read meanwhile
        result = statlines.read(reader)
        result.task_figures, tasks = pending.result()
    except LogReadError as exc:
        common.fail(str(exc), code=2)
    merge_problems(reader, tasks)  # warned of, and exit 2, as for a message file
    common.warn(reader)
    if result.totals.messages == 0 and result.task_figures is None:
        common.nothing(reader, log_dir)
        sys.exit(2 if reader.unreadable else 1)
    return result, reader


RESPONSE_TIME_HELP = """
\b
Response time: for a direct message m from A to B, the time until the first of
  - B's next direct message to A, or
  - B's first message (direct or broadcast) whose reply_to is m's id,
if that comes within 24 hours of m. CC copies never count; one answer can
answer several messages. Example: A->B 10:00 (#1), A->B 10:05 (#2), B->C
10:07 replying to #1, B->A 10:20: B answered #1 in 7m 00s and #2 in 15m 00s
(median 11m 00s, p90 15m 00s).
"""


@click.command(epilog=RESPONSE_TIME_HELP, short_help="What the agents did, in numbers.")
@options.log_source
@options.window
@options.json_object
def stats(
    log_dir: Path,
    rooms: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
    utc: bool,
) -> None:
    """What the agents did, in numbers: totals, agents, pairs, response times,
    activity, tasks and threads.

    CC copies the server makes for the lead (is_cc = 1) are counted apart, never
    as messages; broadcasts are messages to "all". When rooms are read, agents,
    pairs, responders, tasks and threads are each of one room (a room column).
    Exit 0, 1 when no message is in range, 2 on an error.

    \b
    Examples:
      dead-drop-logger stats --since 1w
      dead-drop-logger stats --json | jq '.response_times[] | [.responder, .median_seconds]'
    """
    from ...read import stats_format

    result, reader = _read_stats(log_dir, rooms, since, until, utc)
    if as_json:
        click.echo(stats_format.to_json(result))
    else:
        for line in stats_format.text_lines(result):
            click.echo(line)
    sys.exit(2 if reader.unreadable else 0)  # the numbers of what could be read


@click.command(epilog=RESPONSE_TIME_HELP, short_help="Write the numbers of stats as one HTML page.")
@options.log_source
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    metavar="FILE.html",
    help="Where to write the report (replaced if it exists); - writes it to stdout.",
)
@options.window
@click.option("--title", default="What the agents did", show_default=True, help="The page's title.")
def report(
    log_dir: Path,
    rooms: tuple[str, ...],
    output: Path,
    since: str | None,
    until: str | None,
    title: str,
    utc: bool,
) -> None:
    """One self-contained HTML file with the numbers of stats and six charts
    (hover for values); it opens from disk with no network.

    Needs the report extra (install.sh installs it; from a checkout: pip install
    '.[report]'). Exit codes as stats.

    \b
    Examples:
      dead-drop-logger report -o team.html
      dead-drop-logger report --since 2026-02-01 --until 2026-03-01 -o february.html
    """
    from ...read import report as html_report
    from ...read import stats_format

    try:
        html_report.plotly_js()
    except html_report.ReportUnavailable as exc:
        common.fail(str(exc), code=2)
    result, reader = _read_stats(log_dir, rooms, since, until, utc)
    html_report.fill_previews(result, reader.sources, utc=utc)
    t = result.totals
    subtitle = (
        f"{t.messages:,} messages from {stats_format.when(t.first)} to "
        f"{stats_format.when(t.last)} in {log_dir}"
    )
    page = html_report.render(result, title, subtitle)
    if str(output) == "-":  # stdout, as for most tools: | gzip, | ssh host 'cat > r.html'
        common.guarded(lambda: _write_stdout(page.encode("utf-8")))
        sys.exit(2 if reader.unreadable else 0)
    try:
        size = html_report.write(output.expanduser(), page)
    except html_report.ReportWriteError as exc:
        common.fail(str(exc), code=2)
    click.echo(f"wrote {output} ({size:,} bytes)", err=True)
    sys.exit(2 if reader.unreadable else 0)  # the numbers of what could be read


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
