"""A SIGTERM that lands while the follow loop is inside its own stop.wait() still stops it.

The handler runs in the main thread; if that thread holds the stop event's internal lock
(inside Event.wait), a plain Event.set() there waits forever for its own lock. A daemon
stuck like this ignored every SIGTERM (`restart` failed with "did not exit within 30s").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import signal, sys
from pathlib import Path
from dead_drop_logger.config import Settings
from dead_drop_logger.record.follow import Follower

where = Path(sys.argv[1])
follower = Follower(Settings(db=where / "messages.db", log_dir=where / "logs"))
follower.install_signal_handlers()
with follower.stop._cond:  # where the loop's stop.wait() holds it, between two bytecodes
    signal.raise_signal(signal.SIGTERM)  # its handler runs now, in this thread
print("stop requested:", follower.stop.wait(5))
"""


def test_sigterm_during_the_loops_own_wait_stops_it(tmp_path: Path) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("the SIGTERM handler deadlocked on the stop event") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stop requested: True\n"
