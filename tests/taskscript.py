"""Task histories written as ``tasks-YYYY-MM-DD.json`` lines, exactly as the logger writes
them (the shared spec of issue 19; docs/stats.md, "Tasks"): compact JSON with the
logger's own encoder (dead_drop_logger/encoding.py), keys in the order
task, from, to, [via], [gap], at, [snapshot], row; the row's columns in the order of the
server's ``tasks`` table; each line filed under the day of its ``at``; files 0600.

A script of create / move / edit calls stands for what the server's task tools do to a
row (create_task, update_task, approve_task, reject_task, verify_task): each call is
the row as the logger saw it after that change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dead_drop_logger.encoding import encode_row, escape_separators

# The server's tasks table, in table order (role_hat and the verification columns were
# added by later migrations, so they come last).
COLUMNS = (
    "id", "project", "title", "description", "assigned_to", "created_by", "status",
    "result", "created_at", "updated_at", "completed_at", "role_hat", "goal_id",
    "verified_by", "verified_at", "approved_by",
)  # fmt: skip


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def task_line(
    task: str,
    before: str | None,
    after: str,
    at: str,
    row: dict[str, Any],
    *,
    via: tuple[str, ...] = (),
    gap: bool = False,
    snapshot: bool = False,
) -> bytes:
    """One line, byte for byte as the logger writes it."""
    encoded = encode_row(
        list(row), list(row.values()), ["text" if isinstance(v, str) else "" for v in row.values()]
    )
    parts = [f'"task":{_dump(task)}', f'"from":{_dump(before)}', f'"to":{_dump(after)}']
    if via:
        parts.append(f'"via":{_dump(list(via))}')
    if gap:
        parts.append('"gap":true')
    parts.append(f'"at":{_dump(at)}')
    if snapshot:
        parts.append('"snapshot":true')
    head = escape_separators("{" + ",".join(parts) + ',"row":').encode()
    return head + encoded[:-1] + b"}\n"


class TaskLog:
    """Writes a scripted task history into a log directory (or a room's)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.rows: dict[str, dict[str, Any]] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def _write(self, at: str, line: bytes) -> None:
        path = self.log_dir / f"tasks-{at[:10]}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def create(
        self,
        task: str,
        at: str,
        *,
        title: str,
        created_by: str = "ada",
        project: str = "",
        assigned_to: str | None = None,
        role_hat: str | None = None,
    ) -> None:
        """create_task: assigned when it has an assignee, else pending."""
        status = "assigned" if assigned_to else "pending"
        row = dict.fromkeys(COLUMNS)
        row.update(
            id=task, project=project, title=title, description="", assigned_to=assigned_to,
            created_by=created_by, status=status, result="", created_at=at, updated_at=at,
            role_hat=role_hat,
        )  # fmt: skip
        self.rows[task] = row
        self._write(at, task_line(task, None, status, at, row))

    def move(
        self,
        task: str,
        to: str,
        at: str,
        *,
        via: tuple[str, ...] = (),
        gap: bool = False,
        **changes: Any,
    ) -> None:
        """A status change (update_task, approve_task, reject_task, verify_task)."""
        row = self.rows[task]
        before = row["status"]
        row.update(status=to, updated_at=at, **changes)
        if to == "completed":
            row["completed_at"] = at
        if to == "verified":
            row["verified_at"] = at
        self._write(at, task_line(task, before, to, at, row, via=via, gap=gap))

    def edit(self, task: str, at: str, **changes: Any) -> None:
        """A change of the row that leaves its status (``from == to``)."""
        row = self.rows[task]
        row.update(updated_at=at, **changes)
        self._write(at, task_line(task, row["status"], row["status"], at, row))
