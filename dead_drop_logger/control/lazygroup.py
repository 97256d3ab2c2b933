"""A click group that imports a command's module only when that command is asked for.

Why it exists: a reading command's whole process is mostly start-up (docs/benchmarks.md,
"The index"), and defining every command (22 of them, each with its options) took
about 20 ms of it. Here the group knows each command by name and by the module that
defines it (click's documented "lazily loading subcommands" pattern): ``search`` imports
``commands/search.py`` and no other command's module.

What still loads every module, as it must: the group's own ``--help`` (each command's
short help is written beside the command, once, not copied into a table that could
drift from it; that page is not on any timed path), shell completion of a command's
name (only the names that match), and a mistyped command (so click's "did you mean"
sees every name).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """``lazy``: command name -> ``"module:attribute"``, the module relative to
    ``package``. Commands added with :meth:`add_command` are kept as click keeps them."""

    def __init__(
        self, *args: Any, lazy: Mapping[str, str] | None = None, package: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.package = package

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self._load(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            self.every_command()  # a mistake: click's "did you mean" sees every name
        return super().resolve_command(ctx, args)

    def every_command(self) -> dict[str, click.Command]:
        """Every command, each module imported (for what lists them all)."""
        for name in self.lazy:
            if name not in self.commands:
                self.add_command(self._load(name), name)
        return dict(self.commands)

    def _load(self, name: str) -> click.Command:
        module, _, attribute = self.lazy[name].partition(":")
        command = getattr(importlib.import_module(f".{module}", self.package), attribute)
        if not isinstance(command, click.Command):  # a wrong table: a bug, said plainly
            raise TypeError(f"{self.lazy[name]} is not a click command")
        return command
