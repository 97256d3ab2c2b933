"""The fault suites (tests/faults) run twice: with plain log files and sealed.

Why: the promises (every message exactly once, a fault reported in one line, never a
traceback) must hold for a logger sealing its logs in age segments as much as for one
appending plain lines, and the sealed writer has its own write, link and recovery
steps. So every test under tests/faults gets the autouse ``encryption`` fixture
parametrized ``plain`` and ``sealed`` (the test id says which ran): ``sealed`` sets
``DDL_TEST_ENCRYPTED=1``, which makes every :class:`conftest.LoggerProcess` seal its logs
to the suite's identity (``conftest.encrypted_args``), and the readers the tests check
with (``log_lines``, ``logged_ids``, ``faultkit.wait_all_logged``) decrypt segments.

A fault test that cannot apply to sealed logs is marked ``plain_only("why")`` and runs
once, ``plain``; one that runs its own sealed case is marked ``own_encryption("why")``
and runs once, as it chooses (its own ids say which case is sealed). Both keep their
reason in the code. Elsewhere the fixture does nothing (``DDL_TEST_ENCRYPTED=1`` on the
command line still applies).

A plugin of the root conftest (``pytest_plugins``): a second conftest.py under
tests/faults would shadow the root one the test modules import as ``conftest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ENCRYPTED_SUITE  # (the root conftest, loaded before its plugins)

FAULTS = Path(__file__).parent / "faults"
PLAIN, SEALED, OWN = "plain", "sealed", "own"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "plain_only(reason): a fault test that cannot apply to sealed logs"
    )
    config.addinivalue_line(
        "markers", "own_encryption(reason): a fault test that runs its own sealed case"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if FAULTS not in Path(metafunc.definition.path).parents:
        return
    node = metafunc.definition
    for name in ("plain_only", "own_encryption"):
        marker = node.get_closest_marker(name)
        assert marker is None or (marker.args and marker.args[0]), f"{name}: say why"
    if node.get_closest_marker("own_encryption"):
        return  # (its own ids say which case is sealed)
    variants = [PLAIN] if node.get_closest_marker("plain_only") else [PLAIN, SEALED]
    metafunc.parametrize("encryption", variants, indirect=True)


@pytest.fixture(autouse=True)
def encryption(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """What the loggers a fault test starts write: ``plain``, ``sealed`` or ``own``
    (the test's choice), set in the environment they are made in. Outside tests/faults
    (no parameter) nothing is changed: "" (see the module doc)."""
    variant: str = getattr(request, "param", "")
    if not variant and request.node.get_closest_marker("own_encryption"):
        variant = OWN
    if variant == SEALED:
        monkeypatch.setenv(ENCRYPTED_SUITE, "1")
    elif variant:
        monkeypatch.delenv(ENCRYPTED_SUITE, raising=False)
    yield variant


def is_sealed(variant: str) -> bool:
    return variant == SEALED
