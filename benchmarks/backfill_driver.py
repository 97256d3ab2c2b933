"""Backfill a whole database through the library (what export_historical.py does).

Used by the benchmark while export_historical.py is absent, and to profile the
pipeline without process start-up noise: ``python backfill_driver.py DB LOG_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dead_drop_logger.clock import SystemClock
from dead_drop_logger.pipeline import Pipeline
from dead_drop_logger.source import Source
from dead_drop_logger.writer import DayWriter


def main(db: Path, log_dir: Path) -> int:
    source = Source(db)
    pipeline = Pipeline(source, log_dir, DayWriter(log_dir, SystemClock()))
    pipeline.prepare(database_existed=True)  # position = last id
    done = pipeline.backfill()  # everything before the position
    pipeline.close()
    print(done.lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
