"""The ``dead-drop-logger`` command: a thin layer of click over the library.

It holds the group; each command lives in a module of :mod:`.commands`, one per
capability."""

from __future__ import annotations

import click

# Only what defining the commands needs is imported here: each command imports the
# library modules it uses in its body, so `search --count` loads the reading modules
# and no others (tests/test_startup.py holds that).
from . import cli_errors
from .commands import (
    agents,
    archive,
    export,
    keys,
    live,
    logger,
    onward,
    search,
    stats,
    tasks,
    thread,
    upkeep,
)


@click.group(cls=cli_errors.Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dead-drop-logger")
def cli() -> None:
    """Follow a Dead Drop messages database and append every message, exactly once,
    to daily NDJSON files (~/.dead-drop/logs/messages-YYYY-MM-DD.json)."""


for _command in (
    logger.run,
    upkeep.prune,
    upkeep.index,
    archive.import_archive,
    export.export,
    logger.start,
    logger.stop,
    logger.restart,
    logger.status,
    logger.show_config,
    search.search,
    thread.thread,
    agents.agents,
    live.top,
    tasks.tasks,
    stats.stats,
    stats.report,
    onward.ship,
    keys.keys,
    keys.rekey,
    live.serve,
    onward.notify,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="dead-drop-logger")
