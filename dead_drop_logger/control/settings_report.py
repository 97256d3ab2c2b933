"""``config``: the settings a logger would run with, and where each one came from.

Why: with four layers (command line, environment, the settings file, defaults) the
question "why is it polling every 5 s?" needs an answer that names the layer, and the
line of the file when it is the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    value: object  # JSON-able: str, int, float, bool, None, or a list of str
    source: str  # "default", "config.toml:LINE", "env DEAD_DROP_...", "command line"


@dataclass
class Effective:
    config_file: Path
    found: bool
    settings: list[Setting] = field(default_factory=list)

    def to_json(self) -> str:
        data = {
            "config_file": str(self.config_file),
            "config_file_found": self.found,
            "settings": {s.name: {"value": s.value, "source": s.source} for s in self.settings},
        }
        return json.dumps(data, sort_keys=True)

    def lines(self) -> Iterator[str]:
        state = "" if self.found else " (not found: defaults apply)"
        yield f"settings file: {self.config_file}{state}"
        shown = [(s.name, _show(s.value), s.source) for s in self.settings]
        width = max(len(name) for name, _, _ in shown)
        value_width = max(len(value) for _, value, _ in shown)
        for name, value, source in shown:
            yield f"{name:<{width}}  {value:<{value_width}}  {source}"

    def to_text(self) -> str:
        return "\n".join(self.lines())


def _show(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return str(value)
