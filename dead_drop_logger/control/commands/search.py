"""``search``: the logged messages that match, printed as grep does (the command
a user runs most: its module holds it alone, so it loads nothing of the others)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import options
from . import common


@click.command(short_help="Print the logged messages that match, as grep does.")
@options.log_source
@options.search_filters
@options.search_output
def search(log_dir: Path, utc: bool, pattern: str | None, **params: Any) -> None:
    """Print the logged messages that match every filter given; PATTERN, as grep's, is
    text the content holds (the same as --contains PATTERN; with --contains too, all
    must be there).

    Exit status as grep: 0 something matched, 1 nothing did, 2 an error (with an
    unreadable file: after printing what the others hold).

    \b
    Examples:
      dead-drop-logger search "deploy merge" --from juno
      dead-drop-logger search -i deploy -c                count the matches
      dead-drop-logger search -n 5 --task T-42            the first 5
      dead-drop-logger search -f --to lead                the last 10, then live
      dead-drop-logger search -f -n 50 deploy             the last 50, then live
      dead-drop-logger search --oneline --since 2h | grep -i error
      dead-drop-logger search --full --task T-42          long contents whole
      dead-drop-logger search --agent vega --since yesterday --json | jq .id
      dead-drop-logger search --task T-42 --no-cc --reverse -n 5
      dead-drop-logger search --room ops --room dev deploy
    """
    from ...read import reading
    from ...read.search import Search

    reader = common.reader(log_dir, params["since"], params["until"], utc, params["rooms"])
    filters = common.guarded(
        lambda: reading.make_filters(
            senders=params["senders"],
            recipients=params["recipients"],
            agents=params["agents"],
            task=params["task"],
            contains=(*(() if pattern is None else (pattern,)), *params["contains"]),
            ignore_case=params["ignore_case"],
            regex=params["regex"],
            no_cc=params["no_cc"],
        )
    )
    stop = common.stop_on_signals() if params["follow"] else None
    matched = common.guarded(
        lambda: reading.run_search(
            Search(reader, filters),
            common.printer(params["as_json"], params["oneline"], params["full"]),
            count=params["count"],
            limit=params["limit"],
            reverse=params["reverse"],
            follow=params["follow"],
            interval=params["interval"],
            stop=stop,
        )
    )
    common.finish(reader, matched > 0 or (stop is not None and stop.is_set()))
