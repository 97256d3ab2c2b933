"""A batch's buffers stay mapped for the next batch (see dead_drop_logger.record.heap): batch
after batch of a follower's size costs no page faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# In a fresh interpreter: the test process's own heap history must not decide it. A
# batch as the follower makes one: the page grown by realloc (SQLite's group_concat),
# copied out, decoded to check it, joined into the writer's chunk; pages of varying size.
BATCHES = """
import sys
from dead_drop_logger.record.heap import keep_batch_memory

def faults():
    with open("/proc/self/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[7])  # minflt

if sys.argv[1] == "keep":
    assert keep_batch_memory()
line = b"x" * 450 + b"\\n"

def batch(rows):
    grown = bytearray()
    for _ in range(rows):
        grown += line
    page = bytes(grown)
    del grown
    return len(page.decode()) + len(b"".join([page]))

batch(1000)
before = faults()
for rows in (700, 800, 650, 900, 750, 1000, 600, 850):
    batch(rows)
print(faults() - before)
"""


def faults_in_batches(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", BATCHES, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="page faults from /proc")
def test_batch_after_batch_reuses_the_same_memory() -> None:
    # glibc as it comes gave back and re-faulted ~450 pages over these 8 batches (the
    # old behaviour); kept, only a few faults of the interpreter's own remain.
    assert faults_in_batches("keep") < 50
