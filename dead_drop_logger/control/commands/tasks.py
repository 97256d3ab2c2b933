"""``tasks``: the tasks the logger recorded, or one task's history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import options
from . import common


@click.command(short_help="The recorded tasks, or one task's history.")
@options.task_id
@options.log_source
@options.task_filters
@options.json_tasks
def tasks(
    task_id: str | None,
    log_dir: Path,
    rooms: tuple[str, ...],
    as_json: bool,
    utc: bool,
    **params: Any,
) -> None:
    """The tasks the logger recorded (tasks-*.json): status, assignee, how long in that
    status, reworks and the last transition; open tasks first, the longest in their
    status first. With
    TASK-ID: that task's whole history, every transition with its time and who made it,
    and its messages (task_id TASK-ID). --since/--until keep the tasks with a transition
    in that range. Exit 0, 1 when no task matches, 2 on an error.

    \b
    Examples:
      dead-drop-logger tasks
      dead-drop-logger tasks --status in_progress --stale 2d
      dead-drop-logger tasks --agent juno --project web --json | jq -r .task
      dead-drop-logger tasks TASK-004
    """
    from ...read import reading, taskcommand

    reader = common.reader(log_dir, params["since"], params["until"], utc, rooms)
    chosen = taskcommand.TaskFilter(
        frozenset(params["statuses"]),
        frozenset(params["agents"]),
        frozenset(params["projects"]),
        reader.window,
        params["stale"],
    )
    found = common.guarded(lambda: taskcommand.run(reader, task_id, chosen, as_json, click.echo))
    if not found:
        what = f"task {task_id}" if task_id else "tasks"
        where, hint = reading.read_where(reader, log_dir)
        click.echo(f"dead-drop-logger: no {what} recorded in {where}{hint}", err=True)
    common.finish(reader, found)
