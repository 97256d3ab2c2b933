"""``agents``: one row per agent, from the logs (and, with --json, the database
now)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import options
from . import common


@click.command(short_help="One row per agent: sent, received, first and last seen.")
@options.log_source
@options.team_databases
@options.window
@options.json_rows
def agents(
    log_dir: Path,
    rooms: tuple[str, ...],
    db: tuple[str, ...],
    rooms_dir: Path | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    utc: bool,
) -> None:
    """One row per agent: messages sent, received (direct, broadcast, CC copies), first
    and last seen; the most recently seen first. When rooms are read, an agent is a
    name in a room: one row per room it is in, with a ROOM column. With --json, when
    the database can be read, each row also has what `top` shows of the agent now
    (health, status, task, last message, unanswered messages; docs/top.md), and an
    agent registered there but silent in the logs has a row too.

    \b
    Examples:
      dead-drop-logger agents
      dead-drop-logger agents --since 1w --json | jq -r 'select(.sent == 0) | .agent'
      dead-drop-logger agents --room ops
    """
    from ...read import reading

    reader = common.reader(log_dir, since, until, utc, rooms)
    now = None
    if as_json:
        team = common.team(db, rooms_dir, log_dir, utc, rooms)
        team.refresh()
        if any(r.problem is None for r in team.rows.values()):
            now = team.frame()
        team.close()
    rows = common.guarded(lambda: reading.run_agents(reader, common.printer(as_json), now))
    if not rows:
        common.nothing(reader, log_dir)
    common.finish(reader, rows > 0)
