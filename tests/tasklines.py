"""Reading the logger's task and agent lines in tests (the read side's own module is
another engineer's): every line of ``tasks-*.json`` / ``agents-*.json``, parsed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import _whole_lines, day_files


def lines(log_dir: Path, kind: str = "tasks") -> list[dict[str, Any]]:
    """Every line of the ``kind`` files (tasks or agents), in file order."""
    found: list[dict[str, Any]] = []
    for path in day_files(log_dir, f"{kind}-*.json*"):
        raw = _whole_lines(path)
        if not raw:
            continue
        assert raw.endswith(b"\n"), f"{path} ends in a partial line"
        found += [json.loads(line) for line in raw.split(b"\n")[:-1]]
    return found


def paths(found: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each task's statuses as the lines tell them (``via`` filling the gaps), after
    checking that each line starts where the task's last one ended."""
    told: dict[str, list[str]] = {}
    for line in found:
        path = told.setdefault(line["task"], [])
        assert line["from"] == (path[-1] if path else None), (line, path)
        path += [*line.get("via", []), line["to"]]
    return told


def complete(log_dir: Path, expected: dict[str, list[str]]) -> bool:
    """Whether every task has reached the end of its expected path in the files."""
    try:
        told = paths(lines(log_dir))
    except AssertionError:
        return False
    return all(told.get(task, [None])[-1] == path[-1] for task, path in expected.items())
