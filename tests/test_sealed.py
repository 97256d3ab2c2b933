"""The sealed-segment writer and the unsealed tail, in process (docs/encryption.md):
the state's position never passes a line whose segment is not sealed, a crash at a seal
leaves each message exactly once, and the tail is sealed by size, age and midnight.
The segments are read back by Debian's ``age`` (conftest's log_lines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import serverdb
from conftest import FakeClock, age_identity, logged_ids
from crashing import Crash, CrashingSegmentWriter

from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.sealed import SegmentWriter
from dead_drop_logger.record.source import Source


class Ticks:
    """An injectable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def position(log_dir: Path) -> int:
    return int(json.loads((log_dir / ".dead-drop-logger.state").read_bytes())["position"])


def sealing(
    source: Source,
    log_dir: Path,
    clock: FakeClock,
    ticks: Ticks,
    writer: SegmentWriter | None = None,
) -> Pipeline:
    writer = writer or SegmentWriter(log_dir, clock, (age_identity()[1],))
    pipeline = Pipeline(source, log_dir, writer, ticks=ticks)
    pipeline.seal_limits = (1 << 20, 60.0)
    return pipeline


def test_the_position_waits_for_the_seal(server_db: Path, log_dir: Path) -> None:
    clock, ticks = FakeClock("2026-03-01T12:00:00"), Ticks()
    conn = serverdb.connect(server_db)
    source = Source(server_db)
    log_dir.mkdir()
    pipeline = sealing(source, log_dir, clock, ticks)
    pipeline.prepare(database_existed=False)
    sent = serverdb.send(conn, "juno", "atlas", "one", timestamp="2026-03-01T11:00:00")
    pipeline.follow_once()
    assert position(log_dir) == 0 and logged_ids(log_dir) == []  # read, held in memory
    assert not list(log_dir.glob("*.age"))
    ticks.now += 30
    sent += serverdb.send(conn, "juno", "atlas", "two", timestamp="2026-03-01T11:00:01")
    pipeline.follow_once()
    assert position(log_dir) == 0
    assert pipeline.seal_wait() == pytest.approx(30.0)
    ticks.now += 30  # 60 s after the first line: sealed, then the position moves
    pipeline.follow_once()
    assert position(log_dir) == sent[-1]
    assert logged_ids(log_dir) == sorted(sent)
    # midnight seals too
    sent2 = serverdb.send(conn, "juno", "atlas", "late", timestamp="2026-03-01T23:59:59")
    pipeline.follow_once()
    assert position(log_dir) == sent[-1]
    clock.set("2026-03-02T00:00:01")
    assert pipeline.seal_due()
    pipeline.seal()
    assert logged_ids(log_dir) == sorted(sent + sent2)
    # a stop with a tail: seal() at the stop; without it, it is read again
    sent3 = serverdb.send(conn, "juno", "atlas", "lost?", timestamp="2026-03-02T00:00:02")
    pipeline.follow_once()
    pipeline.close()
    again = sealing(Source(server_db), log_dir, clock, ticks)
    again.follow_once()
    again.seal()
    assert logged_ids(log_dir) == sorted(sent + sent2 + sent3)
    again.close()
    conn.close()


@pytest.mark.parametrize("at", ["temp", "linked"])
def test_a_crash_at_a_seal_leaves_each_message_once(
    server_db: Path, log_dir: Path, at: str
) -> None:
    clock, ticks = FakeClock("2026-03-01T12:00:00"), Ticks()
    conn = serverdb.connect(server_db)
    source = Source(server_db)
    log_dir.mkdir()
    recipient = age_identity()[1]
    writer = CrashingSegmentWriter(log_dir, clock, (recipient,), seal_bytes=400, at=at)
    crashing = sealing(source, log_dir, clock, ticks, writer)
    crashing.prepare(database_existed=False)
    sent = []
    for i in range(12):  # two days, several segments each
        day = "2026-03-01" if i < 6 else "2026-02-28"
        sent += serverdb.send(conn, "juno", "atlas", f"message {i}", timestamp=f"{day}T11:30:00")
    crashing.follow_once()
    ticks.now += 61
    with pytest.raises(Crash):
        crashing.follow_once()
    state = json.loads((log_dir / ".dead-drop-logger.state").read_bytes())
    assert state["pending"] and state["position"] == 0
    resumed = sealing(Source(server_db), log_dir, clock, ticks)
    resumed.follow_once()
    assert not list(log_dir.glob(".*.tmp"))  # the torn temporary is gone
    resumed.seal()
    assert logged_ids(log_dir) == sorted(sent)
    assert position(log_dir) == sent[-1]
    source.close()
    conn.close()


def test_a_big_tail_is_sealed_by_its_size(server_db: Path, log_dir: Path) -> None:
    clock, ticks = FakeClock("2026-03-01T12:00:00"), Ticks()
    conn = serverdb.connect(server_db)
    source = Source(server_db)
    log_dir.mkdir()
    pipeline = sealing(source, log_dir, clock, ticks)
    pipeline.seal_limits = (5000, 60.0)
    pipeline.prepare(database_existed=False)
    sent = []
    for _ in range(40):
        sent += serverdb.send(conn, "juno", "atlas", "x" * 200, timestamp="2026-03-01T11:00:00")
    pipeline.catch_up()
    assert position(log_dir) == sent[-1]  # 5000 bytes passed: sealed with no time passing
    assert logged_ids(log_dir) == sorted(sent)
    source.close()
    conn.close()
