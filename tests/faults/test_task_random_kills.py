"""Exactly once for tasks and agents, the review of issue 19: the logger of two hub rooms
killed (SIGKILL) at random moments, and now and then stopped and restarted, while in each
room a server takes tasks through its tools with messages in between and a second
writer sends messages of its own (tasks and messages interleaved in one database). In
the end every task's every transition is in its room's tasks-*.json once (in a line of
its own or in the ``via`` of a gap), every message in its room's log once, and every
agent registered once.

The moments are random (a seed printed, and taken from DEAD_DROP_TEST_SEED to replay a
run); tests/faults/test_task_crash_points.py kills at each system call of a commit.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import serverdb
import tasklines
from conftest import LoggerProcess, start_writer, wait_until
from faultkit import assert_clean, assert_exactly_once, kill_pid, wait_all_logged
from test_task_record import start_tasks

from dead_drop_logger.logdir.state import StateStore

pytestmark = pytest.mark.both_ways  # with change notifications and --no-watch

ROOMS = ("red", "blue")
ROUNDS = 14


def test_random_kills_and_restarts_of_a_rooms_logger(tmp_path: Path, watch_mode: str) -> None:
    seed = int(os.environ.get("DEAD_DROP_TEST_SEED", "0")) or random.randrange(1, 1 << 30)
    print(f"seed {seed}")
    rng = random.Random(seed)
    rooms, logs = tmp_path / "rooms", tmp_path / "logs"
    dbs = {}
    for room in ROOMS:
        db = serverdb.room_db(rooms, room)
        db.parent.mkdir(parents=True)
        serverdb.create(db)
        dbs[room] = db
    target = ["--rooms-dir", str(rooms), "--log-dir", str(logs)]

    def logger() -> LoggerProcess:
        return LoggerProcess(
            dbs[ROOMS[0]], logs, target=target, watch=watch_mode == "watch"
        ).start()

    first = logger()  # before any task: every task's every step must be logged
    for room in ROOMS:
        wait_until(lambda room=room: f"room {room}: following" in first.stderr(), what=room)
    assert first.stop() == 0
    writers = []
    for room in ROOMS:
        writers.append(start_tasks(dbs[room], 100_000, interval=0.005))
        writers.append(start_writer(dbs[room], 100_000, interval=0.01, prefix=room))
    stderr = []
    try:
        for _ in range(ROUNDS):
            proc = logger()
            time.sleep(rng.uniform(0.05, 1.2))
            assert proc.proc is not None
            if rng.random() < 0.2:
                # a restart (SIGTERM before its handler is in place, the first few
                # milliseconds, ends it as the default action does: a kill as well)
                assert proc.stop() in (0, -signal.SIGTERM)
            else:
                kill_pid(proc.proc.pid)
                proc.proc.wait(timeout=60)
            stderr.append(proc.stderr())
    finally:
        for writer in writers:
            writer.send_signal(signal.SIGTERM)  # the tasks: after the task in hand
        for writer in writers:
            writer.wait(timeout=120)
    last = logger()
    try:
        for room in ROOMS:
            conn = serverdb.connect(dbs[room])
            count = int(conn.execute("SELECT count(*) FROM tasks").fetchone()[0])
            agents = sorted(r[0] for r in conn.execute("SELECT name FROM agents"))
            conn.close()
            assert count > 3, f"room {room}: only {count} tasks were made"
            want = {f"TASK-{n + 1:03d}": serverdb.task_path(n) for n in range(count)}
            wait_until(
                lambda room=room, want=want: tasklines.complete(logs / room, want),
                what=f"room {room}: every task's last step",
            )
            first_start = StateStore(logs / room).first_start()
            assert first_start is not None
            wait_all_logged(logs / room, dbs[room], after=first_start)
            assert tasklines.paths(tasklines.lines(logs / room)) == want  # each once
            assert_exactly_once(logs / room, dbs[room], after=first_start)
            registered = [
                e["agent"]
                for e in tasklines.lines(logs / room, "agents")
                if e["event"] == "registered"
            ]
            assert sorted(registered) == agents  # each agent registered once
    finally:
        assert last.stop() == 0
    for text in [*stderr, last.stderr()]:
        assert_clean(text)
