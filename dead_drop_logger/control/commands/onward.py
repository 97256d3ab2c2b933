"""Delivering the logged lines onward without ``run``: ``ship`` (to NATS,
PostgreSQL or HTTP) and ``notify`` (the [[notify]] rules)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .. import options
from . import common


@click.command(short_help="Deliver the logged lines to NATS, PostgreSQL or HTTP.")
@options.config_file
@options.log_dir
@options.identity
@options.ship_options
@options.log_level
def ship(log_dir: Path, log_level: str, from_start: bool, **params: Any) -> None:
    """Deliver every committed line of the log directory (and its rooms) to each sink,
    exactly once at the sink by the line's ROOM:ID, until SIGTERM or Ctrl-C.

    Each sink keeps its own position (LOG_DIR/.ship/); `status` shows each one's lag
    and last error. See docs/ship.md.

    \b
    Examples:
      dead-drop-logger ship --to nats://127.0.0.1:4222
      dead-drop-logger ship --to postgresql://logger@db/hub --password-env DB_PW
      dead-drop-logger ship --to http://127.0.0.1:9200/dead-drop/_bulk --from-start
    """
    import logging

    from ... import diagnostics
    from ...signals import StopEvent, stop_on_signals
    from .. import shipping

    ctx = click.get_current_context()
    config_ship = common.ship_config(ctx, params)
    if config_ship is None:
        common.fail("nothing to ship to: give --to URL (or [ship] to = [...] in config.toml)", 2)
    diagnostics.configure(log_level, stream=sys.stderr)
    stop = StopEvent()
    stop_on_signals(stop, logging.getLogger(__name__))
    running = shipping.start(config_ship, log_dir.expanduser(), from_start=from_start, stop=stop)
    while not stop.wait(0.5):
        if not any(thread.is_alive() for thread in running.threads):
            break
    running.stop()


@click.command(short_help="Deliver the [[notify]] rules of config.toml (without run).")
@options.config_file
@options.log_dir
@options.identity
@options.log_level
@options.notify_test
def notify(log_dir: Path, log_level: str, test_rule: str | None) -> None:
    """Run the notification rules of the settings file alone, reading the logs (run and
    start run them too, beside the follower). With --test NAME, send a sample event
    through rule NAME and print what the receiver answered.

    \b
    Examples:
      dead-drop-logger notify
      dead-drop-logger notify --test blocked
    """
    from ... import diagnostics
    from .. import notifying

    rules = common.notify_rules()
    if test_rule is not None:
        from ...notify.service import test

        chosen = [rule for rule in rules if rule.name == test_rule]
        if not chosen:
            known = ", ".join(rule.name for rule in rules) or "none"
            common.fail(f"no notify rule {test_rule!r} in the settings file (rules: {known})", 2)
        outcome = test(chosen[0])
        click.echo(f"{chosen[0].sink} {chosen[0].destination}: {outcome.detail}")
        sys.exit(0 if outcome.ok else 1)
    if not rules:
        common.fail("the settings file has no [[notify]] rules (see docs/notify.md)", 2)
    diagnostics.configure(log_level, stream=sys.stderr)
    stop = common.stop_on_signals()
    notifier = notifying.start(rules, log_dir.expanduser())
    assert notifier is not None
    try:
        stop.wait()
    finally:
        notifier.stop()
