"""Helpers of the notify tests: log lines appended as the logger writes them, rules built
from TOML text through the real parser, and a worker driven round by round."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from dead_drop_logger.notify import rules as notify_rules
from dead_drop_logger.notify.rules import Rule

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def message(
    msg_id: int,
    sender: str = "juno",
    to: str = "lead",
    content: str = "blocked on the deploy",
    *,
    timestamp: str = "2026-12-06T10:00:00",
    is_cc: int = 0,
    reply_to: int | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": msg_id,
        "from_agent": sender,
        "to_agent": to,
        "content": content,
        "timestamp": timestamp,
        "read_flag": 0,
        "is_cc": is_cc,
        "cc_original_to": None,
        "task_id": task_id,
        "reply_to": reply_to,
    }


def append(
    log_dir: Path, rows: list[dict[str, Any]], kind: str = "messages", day: str = ""
) -> None:
    """Append rows as whole lines to a day file (no state file: every line committed)."""
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    day = day or "2026-12-06"
    path = log_dir / f"{kind}-{day}.json"
    with open(path, "ab") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")


def rule(text: str, tmp: Path) -> Rule:
    """One rule from a ``[[notify]]`` block, through the real parser."""
    import tomllib

    path = tmp / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    found = notify_rules.parse(tomllib.loads(text)["notify"], text, path)
    assert len(found) == 1
    return found[0]


def at(when: str) -> dt.datetime:
    return dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
