"""``ship`` against a real nats-server -js and PostgreSQL: latency and backlog throughput.

``python benchmarks/ship.py latency [--sends N]``: the real logger follows a database,
``ship`` (default settings) ships it to JetStream; a core NATS subscriber on the
stream's subjects records when each message becomes visible; a writer sends one
message every 20 ms and records when each committed. Prints p50/p99/max of commit to
visible, with ``uptime``'s load.

``python benchmarks/ship.py throughput [--lines N] [--rounds R]``: a backlog of N
logged lines (a day file written as the logger writes it, 10 rooms), shipped to
JetStream and to PostgreSQL by ``ship`` (``--batch-lines 5000``), each timed from start
to the last line acknowledged (the sink's position saved); beside each, interleaved in
the same minute, the sink's own bulk load of the same lines: for JetStream, the same
lines published on the wire with the frames built beforehand (what one connection gets
into the server, no logs read) and nats-py publishing them with ``publish_async``
(the client library's own way), all acknowledged, the same stream settings; for
PostgreSQL, ``COPY`` into a table of the same shape. Prints lines/s for each, with the
load. ``--only nats|pg``: one sink.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import serverdb  # noqa: E402
from sinks import nats_server, postgres_server  # noqa: E402


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def command() -> list[str]:
    return [str(Path(sys.executable).parent / "dead-drop-logger")]


def latency(sends: int) -> None:
    import nats

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with nats_server(tmp) as server:
            db, log_dir = tmp / "messages.db", tmp / "logs"
            serverdb.create(db)
            logger = subprocess.Popen(
                [*command(), "run", "--db", str(db), "--log-dir", str(log_dir)],
                stderr=subprocess.DEVNULL,
            )
            seen: dict[int, float] = {}
            ready = threading.Event()
            done = threading.Event()

            def subscribe() -> None:
                async def main() -> None:
                    nc = await nats.connect(server.url)

                    async def got(msg: object) -> None:
                        data = getattr(msg, "data", b"")
                        seen[json.loads(data)["id"]] = time.monotonic()

                    await nc.subscribe("deaddrop.>", cb=got)
                    await nc.flush()
                    ready.set()
                    while not done.is_set():
                        await asyncio.sleep(0.05)
                    await nc.close()

                asyncio.run(main())

            in_file: dict[int, float] = {}

            def tail() -> None:  # when each line is in the day file (the logger's part)
                offset = 0
                while not done.is_set():
                    for path in log_dir.glob("messages-2*.json"):
                        with open(path, "rb") as f:
                            f.seek(offset)
                            data = f.read()
                        cut = data.rfind(b"\n") + 1
                        now = time.monotonic()
                        for line in data[:cut].split(b"\n")[:-1]:
                            in_file[json.loads(line)["id"]] = now
                        offset += cut
                    time.sleep(0.001)

            watcher = threading.Thread(target=subscribe)
            watcher.start()
            tailer = threading.Thread(target=tail)
            tailer.start()
            ready.wait(30)
            time.sleep(2)  # the logger's first start
            shipper = subprocess.Popen(
                [*command(), "ship", "--log-dir", str(log_dir), "--to", server.url],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(2)
            conn = serverdb.connect(db)
            commits: dict[int, float] = {}
            for i in range(sends):
                ids = serverdb.send(conn, "juno", "atlas", f"latency {i}", leads=())
                commits[ids[0]] = time.monotonic()
                time.sleep(0.02)
            deadline = time.monotonic() + 30
            while len(seen) < len(commits) and time.monotonic() < deadline:
                time.sleep(0.1)
            done.set()
            watcher.join()
            tailer.join()
            for proc in (shipper, logger):
                proc.terminate()
                proc.wait(30)
            delays = sorted((seen[i] - t) * 1000 for i, t in commits.items() if i in seen)
            missing = len(commits) - len(delays)
            p99 = delays[int(len(delays) * 0.99) - 1]
            logged = sorted((in_file[i] - t) * 1000 for i, t in commits.items() if i in in_file)
            print(
                f"of which commit to the day file (the logger): p50"
                f" {statistics.median(logged):.1f} ms,"
                f" p99 {logged[int(len(logged) * 0.99) - 1]:.1f} ms"
            )
            print(
                f"commit to visible in JetStream, {len(delays)} sends (every 20 ms),"
                f" {missing} missing: p50 {statistics.median(delays):.1f} ms,"
                f" p99 {p99:.1f} ms, max {delays[-1]:.1f} ms; {load()}"
            )


def backlog(log_dir: Path, lines: int, rooms: int = 10) -> list[bytes]:
    """A day file per room written as the logger writes one (no state: all committed)."""
    out: list[bytes] = []
    per = lines // rooms
    for room in range(rooms):
        directory = log_dir / f"room{room}"
        directory.mkdir(parents=True)
        (directory / ".dead-drop-logger.lock").write_bytes(b"")
        chunk = []
        for i in range(1, per + 1):
            message = {
                "id": i,
                "from_agent": "juno",
                "to_agent": "atlas",
                "content": f"status update {i}: the build is green, moving on to #{i % 97}",
                "timestamp": "2026-12-01T10:00:00.000000",
                "read_flag": 0,
                "is_cc": 0,
                "cc_original_to": None,
                "task_id": None,
                "reply_to": None,
            }
            chunk.append(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        (directory / "messages-2026-12-01.json").write_bytes(b"".join(chunk))
        out += chunk
    return out


def ship_time(log_dir: Path, url: str, lines: int) -> float:
    import shutil

    shutil.rmtree(log_dir / ".ship", ignore_errors=True)
    start = time.monotonic()
    proc = subprocess.Popen(
        [*command(), "ship", "--log-dir", str(log_dir), "--to", url, "--batch-lines", "5000"],
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            status = list((log_dir / ".ship").glob("*.status.json"))
            if status:
                try:
                    value = json.loads(status[0].read_bytes())
                except ValueError:
                    value = {}
                if value.get("shipped") == lines:
                    return time.monotonic() - start
            if proc.poll() is not None:
                raise RuntimeError("ship exited")
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(60)


def nats_anchor(url: str, stream: str, lines: list[bytes]) -> float:
    import nats

    async def main() -> float:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        start = time.monotonic()
        for at in range(0, len(lines), 5000):
            futures = [
                await js.publish_async(
                    f"{stream.lower()}.r.messages", line[:-1], headers={"Nats-Msg-Id": str(at + n)}
                )
                for n, line in enumerate(lines[at : at + 5000])
            ]
            await asyncio.gather(*futures)
        took = time.monotonic() - start
        await js.delete_stream(stream)
        await nc.close()
        return took

    return asyncio.run(main())


def wire_anchor(url: str, stream: str, lines: list[bytes]) -> float:
    """The same lines published on the NATS wire, as fast as one connection takes them:
    the frames built beforehand (not timed), written 5,000 at a time with every
    acknowledgement awaited. What the server takes, with no reading of logs at all."""
    import nats as nats_client

    from dead_drop_logger.ship.nats_wire import Publisher, frames, new_inbox

    async def make(create: bool) -> None:
        nc = await nats_client.connect(url)
        js = nc.jetstream()
        if create:
            await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        else:
            await js.delete_stream(stream)
        await nc.close()

    asyncio.run(make(True))
    inbox = new_inbox()
    subject = f"{stream.lower()}.r.messages".encode()
    batches = [
        frames(
            inbox,
            at,
            [(subject, str(at + n).encode(), line[:-1]) for n, line in enumerate(chunk)],
        )
        for at in range(0, len(lines), 5000)
        for chunk in [lines[at : at + 5000]]
    ]
    port = int(url.rsplit(":", 1)[1])
    wire = Publisher("127.0.0.1", port, inbox=inbox)
    start = time.monotonic()
    for batch in batches:
        wire.publish_frames(batch)
    took = time.monotonic() - start
    wire.close()
    asyncio.run(make(False))
    return took


def checkpoint(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def pg_anchor(url: str, lines: list[bytes]) -> float:
    """COPY of the same rows into a table of the same shape as ship's (the columns
    taken out of each line beforehand, not timed): PostgreSQL's own bulk load."""
    import psycopg

    from dead_drop_logger.ship.pg_sink import COLUMNS

    rows = []
    for n, line in enumerate(lines):
        text = line[:-1].decode()
        value = json.loads(text)
        cells = [None if value.get(c) is None else str(value[c]) for c in COLUMNS]
        rows.append((f"room{n % 10}", 0, n, *cells, text, text))
    columns = ", ".join(f'"{c}" text' for c in COLUMNS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS anchor")
        conn.execute(
            f"CREATE TABLE anchor (room text, generation integer, id bigint, {columns},"
            " raw jsonb, line text, PRIMARY KEY (room, generation, id))"
        )
        start = time.monotonic()
        with conn.cursor() as cur, cur.copy("COPY anchor FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        took = time.monotonic() - start
        conn.execute("DROP TABLE anchor")
    return took


def throughput(lines: int, rounds: int, only: tuple[str, ...] = ("nats", "pg")) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        log_dir = tmp / "logs"
        data = backlog(log_dir, lines)
        with nats_server(tmp) as nats, postgres_server(tmp) as pg:
            for round_ in range(rounds):
                rows = []
                if "nats" in only:
                    took = wire_anchor(nats.url, f"WIRE{round_}", data)
                    rows.append(("JetStream: bulk publish on the wire (anchor)", took))
                    took = nats_anchor(nats.url, f"ANCHOR{round_}", data)
                    rows.append(("JetStream: nats-py publish_async (anchor)", took))
                    took = ship_time(
                        log_dir, f"{nats.url}?stream=SHIP{round_}&subject=s{round_}", len(data)
                    )
                    rows.append(("JetStream: ship", took))
                if "pg" in only:
                    # each timed run starts from a checkpoint: none pays for the WAL the
                    # run before it left (a checkpoint during it, full-page writes)
                    checkpoint(pg.url)
                    took = pg_anchor(pg.url, data)
                    rows.append(("PostgreSQL: COPY (anchor)", took))
                    checkpoint(pg.url)
                    took = ship_time(log_dir, f"{pg.url}?table=ship{round_}", len(data))
                    rows.append(("PostgreSQL: ship", took))
                for name, took in rows:
                    print(
                        f"round {round_ + 1}: {name}: {len(data)} lines in {took:.1f} s,"
                        f" {len(data) / took:,.0f} lines/s; {load()}"
                    )
                with contextlib.suppress(Exception):
                    pg.query(f"DROP TABLE ship{round_}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("latency", "throughput"))
    parser.add_argument("--sends", type=int, default=500)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=("nats", "pg"), help="one sink (default: both)")
    args = parser.parse_args()
    os.environ.pop("DEAD_DROP_LOG_DIR", None)
    if args.what == "latency":
        latency(args.sends)
    else:
        throughput(args.lines, args.rounds, (args.only,) if args.only else ("nats", "pg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
