"""``thread``: the conversation a message belongs to."""

from __future__ import annotations

from pathlib import Path

import click

from .. import options
from . import common


@click.command(short_help="Print the conversation a message belongs to.")
@options.message_id
@options.log_source
@options.as_json
@options.text_view
def thread(
    message_id: int,
    log_dir: Path,
    rooms: tuple[str, ...],
    as_json: bool,
    oneline: bool,
    full: bool,
    utc: bool,
) -> None:
    """Print the conversation message ID belongs to: up to its root, then every reply
    below it, in id order, indented by depth. ID as printed (#1234) or the number alone.
    Exit status 1 when ID is not logged, 2 when it is logged in several rooms (choose
    one with --room).

    \b
    Examples:
      dead-drop-logger thread 1234
      dead-drop-logger thread '#1234' --oneline
      dead-drop-logger thread 1234 --room ops --json | jq -r .content
    """
    from ...read import reading

    reader = common.reader(log_dir, None, None, utc, rooms)
    if oneline and as_json:
        common.fail("--oneline cannot be combined with --json", code=2)
    printer = common.printer(as_json, oneline, full)
    found = common.guarded(lambda: reading.run_thread(reader, message_id, printer))
    if not found:
        where, hint = reading.read_where(reader, log_dir)
        click.echo(
            f"dead-drop-logger: message {message_id} is not in the logs of {where}{hint}",
            err=True,
        )
    common.finish(reader, found)
