"""The team and the logs live: ``top`` (the terminal, redrawn) and ``serve`` (the
live page and the HTTP API, the serve extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import options
from . import common


@click.command(short_help="The team now, live: health, status, task, waiting messages.")
@options.config_file
@options.team_databases
@options.log_dir
@options.identity
@options.read_utc
@options.once
def top(db: tuple[str, ...], rooms_dir: Path | None, log_dir: Path, utc: bool, once: bool) -> None:
    """The team at a glance, redrawn as the database changes: one row per agent (per
    room with rooms) with its health from its heartbeat (healthy under 2 minutes,
    stale under 10, dead after; unknown without one), its status, its open task,
    its last message and the direct messages it has not answered; below, the open
    tasks by status. Quit with q or Ctrl-C. Details: docs/top.md.

    \b
    Examples:
      dead-drop-logger top
      dead-drop-logger top --rooms-dir ~/.dead-drop/rooms
      dead-drop-logger top --once | grep dead
    """
    from ...read import reading
    from .. import top as live_top

    team = common.team(db, rooms_dir, log_dir, utc)
    out = sys.stdout
    colour = reading.wants_colour(out.buffer)
    if once:
        sys.exit(live_top.once(team, out, reading.line_width(out.buffer), colour))
    if not out.isatty():
        common.fail("top redraws a terminal; use --once for one frame into a pipe or file", code=2)
    sys.exit(live_top.live(team, out, colour))


@click.command(short_help="A live page and an HTTP API over the logs (the serve extra).")
@options.serve_options
def serve(
    log_dir: Path,
    utc: bool,
    db: tuple[str, ...],
    rooms_dir: Path | None,
    host: str,
    port: int,
    token_file: Path | None,
    show_token: bool,
    cors: tuple[str, ...],
    request_timeout: float,
) -> None:
    """Serve the logs over HTTP: the live page at / (agents, the feed as it is
    logged, threads, tasks) and the API under /v1 (messages with search's filters,
    threads, agents, tasks, stats, Server-Sent Events; /v1/openapi.json describes it).
    It reads the logs and, for the team now, the databases (read-only); it never
    writes either. Stops on Ctrl-C or SIGTERM.

    Bound to 127.0.0.1 unless --host says otherwise; any other address requires the
    bearer token, made the first time into a private file (--show-token prints it).
    Needs the serve extra (install.sh installs it; from a checkout:
    pip install '.[serve]'). Details: docs/serve.md.

    \b
    Examples:
      dead-drop-logger serve                      then open http://127.0.0.1:8787/
      dead-drop-logger serve --rooms-dir ~/.dead-drop/rooms --port 9000
      dead-drop-logger serve --host 0.0.0.0       (with the token)
      dead-drop-logger serve --show-token
      curl -s 'http://127.0.0.1:8787/v1/messages?from=juno&limit=5'
    """
    import importlib.util

    from ...serve import security

    path = (token_file or security.default_token_file()).expanduser()
    if show_token:
        try:
            click.echo(security.load_or_make_token(path))
        except security.TokenError as exc:
            common.fail(str(exc), code=2)
        return
    if not all(importlib.util.find_spec(name) for name in ("starlette", "uvicorn")):
        common.fail(
            "serve needs Starlette and uvicorn: pip install 'dead-drop-logger[serve]'"
            " (install.sh installs them)",
            code=2,
        )
    from ...serve import runner

    where = Path(log_dir).expanduser()
    common.reader(where, None, None, utc)  # a missing or unreadable directory: one line, exit 2
    token = None
    if security.needs_token(host):
        try:
            token = security.load_or_make_token(path)
        except security.TokenError as exc:
            common.fail(str(exc), code=2)
    team = common.team(db, rooms_dir, where, utc)
    try:
        opts = runner.Options(where, host, port, token, utc, cors, team, request_timeout)
        sys.exit(runner.run(opts))
    except runner.ServeError as exc:
        common.fail(str(exc), code=2)
