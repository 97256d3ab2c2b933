"""The package's layout is its architecture: imports only run downwards.

The layers, top to bottom (see the README's "Where the code lives"):

- ``control``: the command line, the daemon, ``status``: it may use everything below;
- ``serve``, ``notify``, ``ship``: the capabilities that deliver committed lines onward
  (the HTTP API and live page; notifications and webhooks; shipping to other engines);
- ``record``: database to day files (the write path); it runs the ``keep`` policies;
- ``read``: every command that reads the logs; ``keep``: retention, compression, prune;
- ``index``: the derived index beside the logs, kept by the writer, used by readers;
- ``logdir``: the log directory's own bookkeeping (file names, state, lock); ``crypt``:
  encryption at rest (sealed age segments), below both the writer and the readers;
- the small shared modules at the top of the package.

A module may import its own subpackage and anything in a lower layer, never a higher
one nor a sibling of its own layer (``read`` never imports ``keep`` or ``record``). The
rule is read from the source with ``ast``, so a new upward import fails here at once.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dead_drop_logger"
LAYER = {
    "control": 6,
    "serve": 5,
    "notify": 5,
    "ship": 5,
    "record": 4,
    "read": 3,
    "keep": 3,
    "index": 2,
    "logdir": 1,
    "crypt": 1,
    "": 0,
}
"""Each subpackage's layer ("" is the package's top)."""


def subpackage(module: str) -> str:
    """``dead_drop_logger.record.pipeline`` -> ``record``; a top module -> ``""``."""
    parts = module.split(".")
    assert parts[0] == "dead_drop_logger", module
    return parts[1] if len(parts) > 2 and parts[1] in LAYER else ""


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(part for part in rel.parts if part != "__init__")


def imports(path: Path) -> list[str]:
    """Every module of ours that ``path`` imports, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    return imported(package, path.read_text(encoding="utf-8"))


def imported(package: str, source: str) -> list[str]:
    """The modules of ours that ``source``, a module of ``package``, imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("dead_drop_logger")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("dead_drop_logger"):
                target = node.module
            else:
                continue
            found.append(target)
            found += [f"{target}.{a.name}" for a in node.names]
    return [
        m
        for m in found
        if (PACKAGE.parent / m.replace(".", "/")).exists()
        or (PACKAGE.parent / (m.replace(".", "/") + ".py")).exists()
    ]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert subpackages == set(LAYER) - {""}


def test_the_top_of_the_package_stays_small() -> None:
    assert len([p for p in PACKAGE.glob("*.py")]) <= 12


def test_imports_only_run_downwards() -> None:
    upward: list[str] = []
    for path in modules():
        if path.name == "__main__.py":
            continue  # the entry point (`python -m dead_drop_logger`) stands above every layer
        here = subpackage(module_name(path))
        for target in imports(path):
            there = subpackage(target)
            if there != here and LAYER[there] >= LAYER[here]:
                upward.append(f"{module_name(path)} imports {target}")
    assert upward == []


def test_the_rule_sees_an_upward_import() -> None:
    """The checker itself: relative and absolute imports resolve to our modules."""
    source = (
        "from ..record.pipeline import Pipeline\n"
        "from .. import clock\n"
        "from dead_drop_logger.control import cli\n"
        "import json\n"
    )
    found = imported("dead_drop_logger.read", source)
    assert "dead_drop_logger.record.pipeline" in found
    assert "dead_drop_logger.clock" in found
    assert "dead_drop_logger.control.cli" in found
    assert [subpackage(m) for m in found if m.endswith(("pipeline", "cli"))] == [
        "record",
        "control",
    ]
