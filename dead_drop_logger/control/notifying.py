"""The glue between the command line and :mod:`..notify`: the rules the settings file
holds, their secrets checked before anything starts, the notifier started beside a
follower, and the rules' lines in ``status``.

Why a module of its own: ``run``, ``start``, ``restart``, ``notify`` and ``status`` all
need it, and cli.py stays a thin layer of click. Nothing here imports the notifier's
modules unless the settings file has rules.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import config
from . import configfile, options

if TYPE_CHECKING:
    from ..notify.rules import Rule
    from ..notify.service import Notifier


def rules() -> list[Rule]:
    """The checked ``[[notify]]`` rules of the settings file the command read."""
    ctx = click.get_current_context()
    loaded: configfile.ConfigFile | None = ctx.meta.get(options.CONFIG_META)
    return list(loaded.notify) if loaded is not None else []


def check_secrets(found: Sequence[Rule]) -> str | None:
    """The first rule whose secret cannot be had (``secret_env`` not set), as one line."""
    from ..notify.rules import RuleError

    for rule in found:
        try:
            rule.secret_value()
        except RuleError as exc:
            return str(exc)
    return None


def check_sealed(found: Sequence[Rule]) -> str | None:
    """A rule matching contents sealed per agent with no identity to open them, as one
    line (:func:`..notify.rules.sealed_content_problem`): the command's own log
    directory, and whether it is a logger about to seal contents."""
    if not found:
        return None
    from ..notify.rules import sealed_content_problem

    params = click.get_current_context().params
    where = params.get("log_dir")
    log_dir = Path(str(where)).expanduser() if where else log_dir_of_config()
    sealing = bool(params.get("encrypt_content_to_agents"))
    return sealed_content_problem(found, log_dir, sealing)


def start(found: Sequence[Rule], log_dir: Path) -> Notifier | None:
    """The notifier of ``found``, started; None when there are no rules."""
    if not found:
        return None
    from ..notify.service import Notifier

    notifier = Notifier(found, log_dir)
    notifier.start()
    return notifier


def log_dir_of_config() -> Path:
    ctx = click.get_current_context()
    loaded: configfile.ConfigFile | None = ctx.meta.get(options.CONFIG_META)
    value = loaded.values.get("log_dir") if loaded is not None else None
    return Path(str(value)).expanduser() if value else config.DEFAULT_LOG_DIR


def status_text(found: Sequence[Rule], log_dir: Path) -> list[str]:
    from ..notify.service import statuses

    return [f"  {row.to_text()}" for row in statuses(found, log_dir)]


def status_json(report: str, found: Sequence[Rule], log_dir: Path) -> str:
    from ..notify.service import statuses

    data: dict[str, Any] = json.loads(report)
    data["notify"] = [row.to_json() for row in statuses(found, log_dir)]
    return json.dumps(data, sort_keys=True)
