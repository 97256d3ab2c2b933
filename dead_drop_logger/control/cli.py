"""The ``dead-drop-logger`` command: a thin layer of click over the library.

It holds the group and the table of its commands; each command lives in a module of
:mod:`.commands`, one per capability, imported only when that command runs
(:mod:`.lazygroup`): ``search`` loads search's definitions and no other command's."""

from __future__ import annotations

import click

from . import cli_errors

COMMANDS = {
    "agents": "agents:agents",
    "config": "logger:show_config",
    "export": "export:export",
    "import-archive": "archive:import_archive",
    "index": "upkeep:index",
    "keys": "keys:keys",
    "notify": "onward:notify",
    "prune": "upkeep:prune",
    "rekey": "keys:rekey",
    "report": "stats:report",
    "restart": "logger:restart",
    "run": "logger:run",
    "search": "search:search",
    "serve": "live:serve",
    "ship": "onward:ship",
    "start": "logger:start",
    "stats": "stats:stats",
    "status": "logger:status",
    "stop": "logger:stop",
    "tasks": "tasks:tasks",
    "thread": "thread:thread",
    "top": "live:top",
}
"""Each command's name -> ``module:function`` in :mod:`.commands` (the name is the
command's own: tests/test_startup.py holds that they agree)."""


@click.group(
    cls=cli_errors.Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    lazy=COMMANDS,
    package=f"{__package__}.commands",
)
@click.version_option(package_name="dead-drop-logger")
def cli() -> None:
    """Follow a Dead Drop messages database and append every message, exactly once,
    to daily NDJSON files (~/.dead-drop/logs/messages-YYYY-MM-DD.json)."""


def main() -> None:
    cli(prog_name="dead-drop-logger")
