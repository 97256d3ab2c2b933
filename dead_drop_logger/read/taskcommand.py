"""The ``tasks`` command: the recorded tasks as rows, or one task's whole history.

Why a module: the command line stays thin (control/cli.py parses, this reads and
prints). The histories come from :mod:`.tasklog`; a task's messages are the logged
messages whose ``task_id`` is the task's id, in the task's own room: a search, so
through the index where it covers the files (the rows of that task, not every line).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .logread import Reader
from .reading import RequestError
from .search import Filters, Search
from .tasklog import OPEN, Room, TaskHistory, histories, merge_problems, task_lines, task_reader
from .taskview import TaskFilter, history_lines, history_record, list_lines, task_row
from .when import local_now

__all__ = ["TaskFilter", "run"]


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def run(
    reader: Reader,
    task_id: str | None,
    chosen: TaskFilter,
    as_json: bool,
    echo: Callable[[str], None],
) -> bool:
    """Print the tasks (or the one task) asked for; whether any was found. What could
    not be read is added to ``reader``'s problems (the caller warns and exits 2)."""
    tasks = task_reader(reader)
    found = histories(task_lines(tasks))
    merge_problems(reader, tasks)
    now = local_now()
    if task_id is not None:
        return _one(reader, task_id, found, as_json, echo)
    rows = [task_row(h, now) for h in found.values()]
    rows = [r for r in rows if chosen.admits(r)]
    rows.sort(  # open work first, then the rest; each the longest in its status first
        key=lambda r: (
            r.status not in OPEN,
            -(r.age_seconds or 0.0),
            r.history.room or "",
            r.history.task,
        )
    )
    if as_json:
        for r in rows:
            echo(_dump(r.as_dict()))
    elif rows:
        for line in list_lines(rows, reader.rooms):
            echo(line)
    return bool(rows)


def _one(
    reader: Reader,
    task_id: str,
    found: dict[tuple[Room, str], TaskHistory],
    as_json: bool,
    echo: Callable[[str], None],
) -> bool:
    matches = [h for (room, task), h in found.items() if task == task_id]
    if not matches:
        return False
    if len(matches) > 1:
        rooms = ", ".join(h.room or "-" for h in matches)
        raise RequestError(f"task {task_id} is in several rooms ({rooms}): choose one with --room")
    history = matches[0]
    room = Reader([s for s in reader.sources if s.room == history.room], utc=reader.utc)
    messages = [entry.message for entry in Search(room, Filters(task=task_id)).run()]
    if as_json:
        echo(_dump(history_record(history, messages)))
    else:
        for line in history_lines(history, messages):
            echo(line)
    return True
