"""``/v1/events``: a real logger on two rooms, a real ``serve``, a real SSE client.

A client reads some events and disconnects; messages are sent in both rooms; the
logger is stopped, more are sent, ``serve`` is restarted and the logger started again;
the client reconnects with its Last-Event-ID and must get exactly the messages it
missed (every one, none twice, none it had), then the live ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import serverdb
from conftest import DEADLINE, LoggerProcess, committed_lines, day_files, wait_until
from serving import Event, ServeProcess, sse_events, take

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def keys_logged(log_dir: Path) -> list[str]:
    """Every logged line's key ``ROOM:ID``, room by room in file order."""
    keys = []
    for room in ("dev", "ops"):
        for path in day_files(log_dir / room):
            keys += [f"{room}:{json.loads(line)['id']}" for line in path.read_bytes().splitlines()]
    return keys


def key_of(event: Event) -> str:
    assert event.id is not None
    first = event.id.split(",")[0]
    room = first.rsplit(":", 1)[0]
    return f"{room}:{json.loads(event.data)['id']}"


def send(db: Path, count: int, prefix: str) -> int:
    """``count`` sends; how many lines they make (CC copies too)."""
    conn = serverdb.connect(db)
    made = 0
    for i in range(count):
        made += len(serverdb.send(conn, "juno", "vega" if i % 2 else "lead", f"{prefix} {i}"))
    conn.close()
    return made


def last_id(db: Path) -> int:
    conn = serverdb.connect(db)
    (last,) = conn.execute("SELECT max(id) FROM messages").fetchone()
    conn.close()
    return int(last)


@pytest.fixture
def rooms(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    rooms_dir, log_dir = tmp_path / "rooms", tmp_path / "logs"
    dbs = {name: serverdb.room_db(rooms_dir, name) for name in ("ops", "dev")}
    for db in dbs.values():
        db.parent.mkdir(parents=True)
        serverdb.create(db)
    return rooms_dir, log_dir, dbs


STARTED: list[LoggerProcess | ServeProcess] = []


@pytest.fixture(autouse=True)
def _stop_everything() -> Iterator[None]:
    """Whatever a test started is killed at its end, even when it failed midway."""
    yield
    while STARTED:
        proc = STARTED.pop().proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=DEADLINE)


def start_serve(log_dir: Path, *args: str) -> ServeProcess:
    serve = ServeProcess(log_dir, *args)
    STARTED.append(serve)
    return serve.start()


def start_logger(dbs: dict[str, Path], log_dir: Path, target: list[str]) -> LoggerProcess:
    """The logger on the rooms, once each room's start position is fixed."""
    logger = LoggerProcess(dbs["ops"], log_dir, target=target).start()
    STARTED.append(logger)
    wait_until(
        lambda: all(f"room {r}: following" in logger.stderr() for r in dbs),
        what="both rooms followed",
    )
    return logger


def test_resume_gets_exactly_the_missed_events_across_restarts(
    rooms: tuple[Path, Path, dict[str, Path]],
) -> None:
    rooms_dir, log_dir, dbs = rooms
    target = ["--rooms-dir", str(rooms_dir), "--log-dir", str(log_dir)]
    logger = start_logger(dbs, log_dir, target)
    first = send(dbs["ops"], 2, "before") + send(dbs["dev"], 1, "before")
    # committed, not only stored: serve starts a client at the committed end, and a held
    # batch is in the file before the logger's next save records it
    wait_until(lambda: len(committed_lines(log_dir)) == first, what="the first lines committed")
    before = keys_logged(log_dir)
    newest = {room: [k for k in before if k.startswith(room + ":")][-1] for room in ("ops", "dev")}

    serve = start_serve(log_dir, *target)
    with httpx.Client(timeout=DEADLINE) as client:
        with client.stream("GET", serve.url + "v1/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            position = take(events, 1, ("position",))[0]
            assert position.id is not None
            assert sorted(position.id.split(",")) == sorted(newest.values())  # each room's
            lines = send(dbs["ops"], 3, "seen") + send(dbs["dev"], 2, "seen")
            seen = take(events, lines)
        last_id = seen[-1].id
        assert last_id is not None and len(last_id.split(",")) == 2
        seen_keys = [key_of(e) for e in seen]
        assert sorted(seen_keys) == sorted(set(keys_logged(log_dir)) - set(before))

        # Disconnected: sends in both rooms, the logger stopped, sends while it is
        # down, serve restarted, the logger started again.
        missed = send(dbs["dev"], 2, "missed") + send(dbs["ops"], 1, "missed")
        wait_until(lambda: len(keys_logged(log_dir)) == first + lines + missed, what="logged")
        assert logger.stop() == 0
        missed += send(dbs["ops"], 2, "down") + send(dbs["dev"], 1, "down")
        assert serve.stop() == 0
        serve = start_serve(log_dir, *target)
        logger = start_logger(dbs, log_dir, target)
        total = first + lines + missed
        wait_until(lambda: len(keys_logged(log_dir)) == total, what="all logged")

        headers = {"Last-Event-ID": last_id}
        with client.stream("GET", serve.url + "v1/events", headers=headers) as response:
            events = sse_events(response)
            got = take(events, missed)
            expected = [k for k in keys_logged(log_dir) if k not in set(before) | set(seen_keys)]
            got_keys = [key_of(e) for e in got]
            assert sorted(got_keys) == sorted(expected)  # every missed one, once
            for room in ("ops", "dev"):  # in each room, in log order
                mine = [k for k in got_keys if k.startswith(room + ":")]
                assert mine == [k for k in expected if k.startswith(room + ":")]
            # then live, and nothing else came in between
            live = send(dbs["dev"], 1, "live")
            after = take(events, live, ("message", "position"))
            assert [e.type for e in after] == ["message"] * live
            dev = [k for k in keys_logged(log_dir) if k.startswith("dev:")]
            assert [key_of(e) for e in after] == dev[-live:]
    assert serve.stop() == 0
    assert logger.stop() == 0


def test_filters_on_events_and_the_position_moving_past_others(
    rooms: tuple[Path, Path, dict[str, Path]],
) -> None:
    rooms_dir, log_dir, dbs = rooms
    target = ["--rooms-dir", str(rooms_dir), "--log-dir", str(log_dir)]
    logger = start_logger(dbs, log_dir, target)
    serve = start_serve(log_dir, *target)
    with httpx.Client(timeout=DEADLINE) as client:
        url = serve.url + "v1/events?room=ops&contains=needle&no_cc=1"
        with client.stream("GET", url) as response:
            events = sse_events(response)
            take(events, 1, ("position",))
            send(dbs["dev"], 2, "needle in dev")  # another room: not for this client
            # dev's lines are committed (this client's position moves past them) before
            # ops has any: else the logger may commit them after ops' line, whose id
            # then rightly names an earlier dev position
            dev_last = f"dev:{last_id(dbs['dev'])}"
            wait_until(
                lambda: dev_last in (take(events, 1, ("position",))[0].id or "").split(","),
                what=f"a position event at {dev_last}",
            )
            send(dbs["ops"], 2, "hay")
            conn = serverdb.connect(dbs["ops"])
            wanted = serverdb.send(conn, "vega", "juno", "a needle here")[0]
            conn.close()
            got = take(events, 1)
            assert json.loads(got[0].data)["id"] == wanted
            assert got[0].id is not None and got[0].id.startswith(f"ops:{wanted},dev:")
            # its id says where dev got to as well, though nothing of dev was sent
            assert dev_last == [k for k in keys_logged(log_dir) if k.startswith("dev:")][-1]
            assert dev_last in got[0].id.split(",")
    assert serve.stop() == 0
    assert logger.stop() == 0
