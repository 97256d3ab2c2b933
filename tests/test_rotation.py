"""Midnight, the current symlink and the policies in the follow loop, with time driven
by an injected clock (no sleeping until midnight), plus exactly-once across midnight
when a batch dies half-written just before it."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import serverdb
from conftest import FakeClock, logged_ids, wait_until
from crashing import Crash, CrashingWriter

from dead_drop_logger.config import Settings
from dead_drop_logger.keep import housekeeping
from dead_drop_logger.logdir import layout
from dead_drop_logger.record import rotation
from dead_drop_logger.record.follow import Follower
from dead_drop_logger.record.pipeline import Pipeline
from dead_drop_logger.record.rotation import seconds_to_midnight
from dead_drop_logger.record.source import Source
from dead_drop_logger.record.writer import DayWriter

PLUS2 = dt.timezone(dt.timedelta(hours=2))
PLUS5 = dt.timezone(dt.timedelta(hours=5))


class Running:
    """A Follower on its own thread, stopped (and joined) at the end of the test."""

    def __init__(self, settings: Settings, clock: FakeClock) -> None:
        self.follower = Follower(settings, clock=clock)
        self.thread = threading.Thread(target=self.follower.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.follower.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture
def follow(server_db: Path, log_dir: Path) -> Iterator[type[Running]]:
    started: list[Running] = []

    class Tracked(Running):
        def __init__(self, settings: Settings, clock: FakeClock) -> None:
            super().__init__(settings, clock)
            started.append(self)

    yield Tracked
    for running in started:
        running.stop()


def current_target(log_dir: Path) -> str | None:
    try:
        return os.readlink(layout.current_path(log_dir))
    except FileNotFoundError:
        return None


def test_midnight_creates_the_day_switches_the_link_and_applies_the_policies(
    server_db: Path, log_dir: Path, follow: type[Running]
) -> None:
    log_dir.mkdir()
    (log_dir / "messages-2026-01-30.json").touch()  # 30 days old on 03-01, 31 on 03-02
    (log_dir / "keep-me.txt").write_text("not ours")
    clock = FakeClock("2026-03-01T23:59:00", tz=PLUS2)
    settings = Settings(db=server_db, log_dir=log_dir, poll_interval=0.02, compress_after=0)
    running = follow(settings, clock)
    wait_until(lambda: current_target(log_dir) == "messages-2026-03-01.json", what="the link")
    today = log_dir / "messages-2026-03-01.json"
    assert today.stat().st_mode & 0o777 == 0o600

    def has_jan_30() -> bool:  # compressed at start (--compress-after 0), but kept
        return any(f.day == dt.date(2026, 1, 30) for f in layout.log_files(log_dir))

    assert has_jan_30()  # still inside retention
    wait_until(lambda: (log_dir / ".dead-drop-logger.state").exists(), what="the state")

    conn = serverdb.connect(server_db)
    sent = serverdb.send(conn, "juno", "atlas", "evening", timestamp="2026-03-01T23:59:30")
    wait_until(lambda: logged_ids(log_dir) == sorted(sent), what="the evening message")

    clock.set("2026-03-02T00:00:00.5")
    wait_until(lambda: current_target(log_dir) == "messages-2026-03-02.json", what="midnight")
    new_day = log_dir / "messages-2026-03-02.json"
    assert new_day.read_bytes() == b""  # exists before any message of the day
    assert new_day.stat().st_mode & 0o777 == 0o600
    wait_until(lambda: not has_jan_30(), what="retention")
    # compression renames the .gz into place, then unlinks the original: wait for the last step
    wait_until(lambda: not today.exists(), what="compression to remove the original")
    assert (log_dir / "messages-2026-03-01.json.gz").exists()

    sent += serverdb.send(conn, "juno", "atlas", "morning", timestamp="2026-03-02T00:00:01")
    sent += serverdb.send(conn, "atlas", "juno", "late", timestamp="2026-03-01T23:59:59")
    wait_until(lambda: logged_ids(log_dir) == sorted(sent), what="the new messages")
    running.stop()
    assert (log_dir / "keep-me.txt").read_text() == "not ours"
    assert {f.path.name for f in layout.log_files(log_dir)} == {
        "messages-2026-03-01.json.gz",
        "messages-2026-03-01.1.json",  # the late line for a compressed day
        "messages-2026-03-02.json",
    }
    conn.close()


def test_utc_moves_the_routing_date_and_midnight(
    server_db: Path, log_dir: Path, follow: type[Running]
) -> None:
    clock = FakeClock("2026-03-02T04:59:00", tz=PLUS5)  # 23:59 UTC on 03-01
    assert seconds_to_midnight(clock, utc=True) == 60
    assert seconds_to_midnight(clock, utc=False) == 19 * 3600 + 60
    running = follow(Settings(db=server_db, log_dir=log_dir, poll_interval=0.02, utc=True), clock)
    wait_until(lambda: current_target(log_dir) == "messages-2026-03-01.json", what="the link")
    wait_until(lambda: (log_dir / ".dead-drop-logger.state").exists(), what="the state")
    conn = serverdb.connect(server_db)
    # 04:59:30 at +05:00 is still 03-01 in UTC (its local date would be 03-02)
    sent = serverdb.send(conn, "juno", "atlas", "x", timestamp="2026-03-02T04:59:30+05:00")
    wait_until(lambda: logged_ids(log_dir) == sorted(sent), what="the message")
    assert (log_dir / "messages-2026-03-01.json").read_bytes().count(b"\n") == 2
    clock.set("2026-03-02T05:00:01")
    wait_until(lambda: current_target(log_dir) == "messages-2026-03-02.json", what="UTC midnight")
    running.stop()
    conn.close()


def test_the_wait_never_sleeps_past_midnight(
    server_db: Path, log_dir: Path, follow: type[Running]
) -> None:
    clock = FakeClock("2026-03-01T23:59:59", running=True)  # midnight in 1 real second
    follow(Settings(db=server_db, log_dir=log_dir, poll_interval=3600), clock)
    wait_until(lambda: current_target(log_dir) == "messages-2026-03-02.json", what="midnight")


def test_the_link_follows_a_part_switch(
    server_db: Path, log_dir: Path, follow: type[Running]
) -> None:
    clock = FakeClock("2026-03-01T12:00:00")
    settings = Settings(
        db=server_db, log_dir=log_dir, poll_interval=0.02, max_bytes=300, keep_files=3
    )
    running = follow(settings, clock)
    wait_until(lambda: (log_dir / ".dead-drop-logger.state").exists(), what="the state")
    conn = serverdb.connect(server_db)
    sent: list[int] = []
    for i in range(6):
        sent += serverdb.send(conn, "juno", "atlas", f"m{i}", timestamp="2026-03-01T11:00:00")
    # every send logged, so no later part can appear while we look at the link
    wait_until(lambda: sent[-1] in logged_ids(log_dir), what="the last message")
    newest = layout.log_files(log_dir)[-1]
    assert newest.part >= 3
    wait_until(lambda: current_target(log_dir) == newest.path.name, what="the link to follow")
    wait_until(lambda: len(layout.log_files(log_dir)) <= 3, what="--keep-files")
    running.stop()
    conn.close()


def test_a_batch_killed_just_before_midnight_is_logged_once_after_it(
    server_db: Path, log_dir: Path
) -> None:
    clock = FakeClock("2026-03-01T23:59:59")
    conn = serverdb.connect(server_db)
    source = Source(server_db)
    dying = Pipeline(source, log_dir, CrashingWriter(log_dir, clock))
    dying.prepare(database_existed=False)
    sent: list[int] = []
    for i in range(5):  # no usable timestamp: routed by the clock's date
        sent += serverdb.send(conn, "juno", "atlas", f"n{i}", timestamp="yesterday-ish")
    with pytest.raises(Crash):
        dying.follow_once()
    torn = log_dir / "messages-2026-03-01.json"
    assert torn.read_bytes() and not torn.read_bytes().endswith(b"\n")

    clock.set("2026-03-02T00:00:01")
    # midnight work runs before the restarted batch: it must leave the torn file alone
    housekeeping.run(log_dir, dt.date(2026, 3, 2), housekeeping.Policy(compress_after=0))
    assert torn.exists() and not layout.compressed_path(torn).exists()

    Pipeline(source, log_dir, DayWriter(log_dir, clock)).catch_up()
    assert logged_ids(log_dir) == sorted(sent)
    assert torn.read_bytes() == b""  # cut back; the batch went to the new day
    housekeeping.run(log_dir, dt.date(2026, 3, 2), housekeeping.Policy(compress_after=0))
    assert layout.compressed_path(torn).exists()
    assert logged_ids(log_dir) == sorted(sent)
    source.close()
    conn.close()


def test_failing_policies_are_retried_a_minute_later_not_every_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dt.date] = []
    now = [1000.0]

    def disk_full(log_dir: Path, day: dt.date, policy: housekeeping.Policy) -> None:
        calls.append(day)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(housekeeping, "run", disk_full)
    monkeypatch.setattr(rotation, "monotonic", lambda: now[0])
    rotator = rotation.Rotator(tmp_path, FakeClock("2026-03-01T12:00:00"))
    with pytest.raises(OSError):
        rotator.tick()
    assert (tmp_path / "messages-2026-03-01.json").exists()  # file and link still made
    assert current_target(tmp_path) == "messages-2026-03-01.json"
    for _ in range(5):
        rotator.tick()
    assert len(calls) == 1
    now[0] += rotation.POLICY_RETRY
    with pytest.raises(OSError):
        rotator.tick()
    assert len(calls) == 2
