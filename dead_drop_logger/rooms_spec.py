"""Room names, and ``--db`` values: a bare ``PATH`` or ``NAME=PATH``.

Why a module of its own: the command line, the settings file and ``import-archive`` all
name rooms, and a room's name becomes a directory under the log directory, so what a
valid name is must be decided in one place (no ``/``, nothing hidden, no ``..``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class RoomNameError(ValueError):
    """Not a usable room name; the message says why."""


def check_room_name(name: str) -> str:
    """``name`` if it can be a directory of its own under the log directory."""
    if not name or name.strip() != name:
        raise RoomNameError(f"room name {name!r} must be non-empty, without surrounding spaces")
    if "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        raise RoomNameError(f"room name {name!r} cannot hold '/' or start with '.'")
    return name


def split_db(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path -> (None, PATH).

    A value is NAME=PATH when its first ``=`` comes before any ``/`` (a path with a
    ``/`` before its ``=`` stays a bare path; name a relative path holding ``=`` as
    ``./a=b.db``). Raises RoomNameError when that NAME is not a valid room name
    (``=x.db``, ``.a=x.db``): taken as a path, it would silently follow the wrong file.
    """
    name, sep, path = value.partition("=")
    if sep and "/" not in name and "\\" not in name:
        if not path:
            raise RoomNameError(f"room {name!r} names no database: --db NAME=PATH")
        return check_room_name(name), path
    return None, value


def parse_dbs(values: Iterable[str]) -> tuple[Path | None, dict[str, Path]]:
    """The bare database (at most one) and the named rooms. Raises ValueError."""
    bare: list[Path] = []
    rooms: dict[str, Path] = {}
    for value in values:
        name, path = split_db(value)
        if name is None:
            bare.append(Path(path).expanduser())
        elif name in rooms:
            raise ValueError(f"room {name!r} is named twice")
        else:
            rooms[name] = Path(path).expanduser()
    if len(bare) > 1:
        raise ValueError("only one bare --db PATH; name the others: --db NAME=PATH")
    if bare and rooms:
        raise ValueError("a bare --db PATH cannot be combined with rooms; name it: --db NAME=PATH")
    for database in [*bare, *rooms.values()]:
        if database.is_dir():
            raise ValueError(f"{database} is a directory, not a database file")
    return (bare[0] if bare else None), rooms


def clashes(rooms_dir: Path, named: Iterable[str]) -> list[str]:
    """The rooms named explicitly that the rooms directory also holds (sorted)."""
    return sorted(name for name in named if (rooms_dir / name).is_dir())
