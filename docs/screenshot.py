"""Make docs/report.png: the README's picture of ``report``, by the path the test takes.

    .venv/bin/python docs/screenshot.py [--out docs/report.png]

A simulated team's fortnight (tests/serverdb.py ``simulate_team``) is logged by the real
logger, ``dead-drop-logger report`` writes the page, and headless Chromium
(tests/browser.py, as in tests/test_report.py) opens it from disk and takes the picture;
the script fails if the page made a request or logged an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import browser  # noqa: E402
import serverdb  # noqa: E402
from conftest import log_with_real_logger, logger_command  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddl-shot-") as tmp:
        db, log_dir, page = Path(tmp, "messages.db"), Path(tmp, "logs"), Path(tmp, "team.html")
        serverdb.create(db)
        serverdb.simulate_team(db, dt.datetime(2026, 2, 2), days=14)
        log_with_real_logger(db, log_dir)
        subprocess.run(
            [*logger_command(), "report", "--log-dir", str(log_dir), "-o", str(page),
             "--title", "Team alpha: what the agents did"],
            check=True,
        )  # fmt: skip
        return browser.main([str(page), "--screenshot", str(args.out), "--width", str(args.width)])


if __name__ == "__main__":
    sys.exit(main())
