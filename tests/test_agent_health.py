"""Agent health that changes with time alone (healthy -> stale after 2 minutes without
a heartbeat, dead after 10: the server's ``who``), recorded at the moment the threshold
is crossed: by the table follower under an injected clock (no real waiting), and by the
real process, which wakes for the crossing rather than at its poll interval."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import serverdb
import tasklines
from conftest import FakeClock, wait_until

from dead_drop_logger.record.source import Source
from dead_drop_logger.record.tables import TableFollower


def local(clock: FakeClock) -> str:
    """The clock's now as the server writes it (local time, no zone)."""
    return clock.now().astimezone().replace(tzinfo=None).isoformat()


def health_lines(log_dir: Path) -> list[tuple[str, str | None, str, object]]:
    return [
        (e["event"], e["health"], e["at"], e["from"]) for e in tasklines.lines(log_dir, "agents")
    ]


def follower(db: Path, log_dir: Path, clock: FakeClock) -> TableFollower:
    log_dir.mkdir(mode=0o700, exist_ok=True)
    return TableFollower(Source(db), log_dir, clock)


def test_stale_after_2_minutes_dead_after_10_at_the_crossing(
    server_db: Path, log_dir: Path
) -> None:
    clock = FakeClock("2026-12-06T10:00:00")
    conn = serverdb.connect(server_db)
    beat = local(clock)
    serverdb.register(conn, "juno", role="builder", now=beat)
    serverdb.ping(conn, "juno", now=beat)
    tables = follower(server_db, log_dir, clock)
    tables.begin(existed=False, importing=False)  # a new database: every row is new
    assert tables.tick() == 1
    assert tables.wait_time() == 120.0  # the wake-up: when juno turns stale
    clock.advance(seconds=119.5)
    assert tables.tick() == 0  # still healthy; nothing read (the database is unchanged)
    assert tables.wait_time() == 0.5
    clock.advance(seconds=1)
    assert tables.tick() == 1
    assert tables.wait_time() == 479.5  # then: when juno turns dead
    clock.advance(seconds=1000)
    assert tables.tick() == 1
    assert tables.wait_time() is None  # dead stays dead: no more wake-ups
    again = local(clock)
    serverdb.ping(conn, "juno", now=again)
    assert tables.tick() == 1
    stamp = dt.datetime.fromisoformat(beat)
    assert health_lines(log_dir) == [
        ("registered", "healthy", beat, None),
        ("health", "stale", (stamp + dt.timedelta(seconds=120)).isoformat(), "healthy"),
        ("health", "dead", (stamp + dt.timedelta(seconds=600)).isoformat(), "stale"),
        ("health", "healthy", again, "dead"),
    ]


def test_both_crossings_when_the_logger_was_away(server_db: Path, log_dir: Path) -> None:
    clock = FakeClock("2026-12-06T10:00:00")
    conn = serverdb.connect(server_db)
    beat = local(clock)
    serverdb.register(conn, "juno", now=beat)
    serverdb.ping(conn, "juno", now=beat)
    tables = follower(server_db, log_dir, clock)
    tables.begin(existed=False, importing=False)
    tables.tick()
    clock.advance(hours=1)  # a new process an hour later: the state on disk tells
    later = follower(server_db, log_dir, clock)
    later.begin(existed=True, importing=False)
    later.tick()
    assert [(e, h, f) for e, h, _, f in health_lines(log_dir)] == [
        ("registered", "healthy", None),
        ("health", "stale", "healthy"),
        ("health", "dead", "stale"),
    ]
    lines = tasklines.lines(log_dir, "agents")
    assert lines[-1]["row"] == json.loads(json.dumps(lines[0]["row"]))  # the row as stored


def test_no_heartbeat_no_health(server_db: Path, log_dir: Path) -> None:
    """The server's ``who`` says unknown without a heartbeat: health unknown, never aged."""
    clock = FakeClock("2026-12-06T10:00:00")
    conn = serverdb.connect(server_db)
    serverdb.register(conn, "atlas", now=local(clock))
    tables = follower(server_db, log_dir, clock)
    tables.begin(existed=False, importing=False)
    tables.tick()
    clock.advance(hours=2)
    assert tables.tick() == 0
    assert tables.wait_time() is None
    assert [(e, h) for e, h, _, _ in health_lines(log_dir)] == [("registered", "unknown")]


@pytest.mark.parametrize("watch", [True, False], ids=["watch", "no-watch"])
def test_the_process_wakes_for_the_crossing(
    server_db: Path, log_dir: Path, logger, watch: bool
) -> None:
    """Polling only every 10 minutes, the logger still records juno stale when its
    heartbeat turns 2 minutes old (here 10 s after start), at that moment."""
    conn = serverdb.connect(server_db)
    proc = logger("--poll-interval", "600", watch=watch).start()
    proc.wait_ready()
    beat = (dt.datetime.now() - dt.timedelta(seconds=110)).isoformat()
    serverdb.register(conn, "juno", now=beat)
    serverdb.ping(conn, "juno", now=beat)
    if not watch:  # (without notifications the registration waits for the poll)
        proc.stop()
        proc = logger("--poll-interval", "600", watch=watch).start()
        proc.wait_ready()
    wait_until(lambda: any(e[1] == "stale" for e in health_lines(log_dir)), what="juno stale")
    assert proc.stop() == 0
    stale = (dt.datetime.fromisoformat(beat) + dt.timedelta(seconds=120)).isoformat()
    assert health_lines(log_dir)[-1] == ("health", "stale", stale, "healthy")


def who(hb: object, now_dt: dt.datetime) -> str:
    """The server's ``who`` health, transcribed statement for statement from
    src/dead_drop/server.py (stored commit 0f6e1f5): the oracle."""
    if hb:
        try:
            last_hb = dt.datetime.fromisoformat(hb)  # type: ignore[arg-type]
            delta = (now_dt - last_hb).total_seconds()
            if delta < 120:
                return "healthy"
            elif delta < 600:
                return "stale"
            return "dead"
        except (ValueError, TypeError):
            return "unknown"
    return "unknown"


def test_the_recorder_and_the_readers_give_who_s_health_for_one_heartbeat(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    """One rule (dead_drop_logger/server.py) for the agents-*.json lines and for
    ``agents --json``: the same health as the server's ``who`` for the same heartbeat,
    with and without a zone, null, empty, or not a time."""
    from conftest import run_command

    from dead_drop_logger.clock import TEST_NOW

    clock = FakeClock("2026-12-06T10:00:00")
    now = clock.now().astimezone().replace(tzinfo=None)  # the server's naive local now
    zoned = clock.now() - dt.timedelta(seconds=30)
    beats: dict[str, object] = {
        "fresh": (now - dt.timedelta(seconds=30)).isoformat(),
        "quiet": (now - dt.timedelta(minutes=5)).isoformat(),
        "gone": (now - dt.timedelta(minutes=20)).isoformat(),
        "zoned": zoned.astimezone().isoformat(),  # the same moment as fresh, with a zone
        "utc": zoned.isoformat(),
        "never": None,
        "empty": "",
        "garbled": "yesterday-ish",
    }
    db, log_dir = tmp_path / "messages.db", tmp_path / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    for name, beat in beats.items():
        serverdb.register(conn, name, now=(now - dt.timedelta(hours=1)).isoformat())
        conn.execute("UPDATE agents SET heartbeat_at = ? WHERE name = ?", (beat, name))
    conn.close()
    want = {name: who(beat, now) for name, beat in beats.items()}
    assert set(want.values()) == {"healthy", "stale", "dead", "unknown"}
    assert want["zoned"] == want["utc"] == want["never"] == "unknown"

    tables = follower(db, log_dir, clock)
    tables.begin(existed=False, importing=False)
    tables.tick()
    recorded = {e["agent"]: e["health"] for e in tasklines.lines(log_dir, "agents")}
    env = {**home_env, TEST_NOW: now.isoformat()}
    listed = run_command("agents", "--json", "--db", str(db), "--log-dir", str(log_dir), env=env)
    assert listed.returncode == 0, listed.stderr
    shown = {row["agent"]: row["health"] for row in map(json.loads, listed.stdout.splitlines())}
    assert recorded == want
    assert {k: shown[k] for k in beats} == want
