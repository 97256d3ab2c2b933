"""Exactly once at the sink under abuse: ``kill -9`` of ``ship`` many times, a long sink
outage, a midnight, compression and retention, then every ``(room, id)`` checked in
JetStream and PostgreSQL with their own clients.

``python benchmarks/ship_kills.py [--kills 100] [--outage 600]``: two rooms with four
old days of history (lines on both sides of each midnight) and a live writer; ``ship``
to a real nats-server -js and PostgreSQL killed with SIGKILL ``--kills`` times at random
moments (0.1 to 1.5 s apart), the old days compressed and the oldest deleted by
retention along the way, both sinks stopped for ``--outage`` seconds while lines keep
being logged; at the end the stream and the table must hold every logged line once,
byte for byte. Prints the counts, the time taken and the load.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import serverdb  # noqa: E402
from sinks import nats_server, postgres_server  # noqa: E402
from test_ship import days_ago, in_nats, in_pg, logged, ship  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--outage", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rooms = {name: tmp / name / "messages.db" for name in ("ops", "dev.team")}
        for name, db in rooms.items():
            db.parent.mkdir()
            serverdb.create(db)
            conn = serverdb.connect(db)
            for days in (4, 3, 2, 1):
                for i in range(200):
                    stamp = days_ago(days, 23, 59, 50 + i / 50)
                    serverdb.send(conn, "juno", "atlas", f"{name} {days} {i}", timestamp=stamp)
                    serverdb.send(
                        conn,
                        "vega",
                        "orion",
                        f"{name} {days} after {i}",
                        timestamp=days_ago(days - 1, 0, 0, i / 50),
                    )
            conn.close()
        log_dir = tmp / "logs"
        target = [x for name, db in rooms.items() for x in ("--db", f"{name}={db}")]
        logger = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dead-drop-logger"),
                "run",
                *target,
                "--log-dir",
                str(log_dir),
                "--import-historical",
                "--retention-days",
                "0",
                "--poll-interval",
                "0.05",
            ],
            stderr=subprocess.DEVNULL,
        )
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "tests" / "serverdb.py"),
                    str(db),
                    "--sends",
                    "3000",
                    "--interval",
                    "0.05",
                ]
            )
            for db in rooms.values()
        ]
        with nats_server(tmp) as nats, postgres_server(tmp) as pg:
            targets = (nats.url, pg.url)
            shipper = None
            for kill in range(args.kills):
                shipper = ship(
                    log_dir, *targets, extra=("--batch-lines", str(rng.choice((7, 100, 1000))))
                )
                time.sleep(rng.uniform(0.1, 1.5))
                shipper.send_signal(signal.SIGKILL)
                shipper.wait()
                if kill == args.kills // 3:
                    subprocess.run(
                        [
                            str(Path(sys.executable).parent / "dead-drop-logger"),
                            "prune",
                            "--log-dir",
                            str(log_dir),
                            "--compress-after",
                            "2",
                            "--retention-days",
                            "0",
                        ],
                        check=True,
                    )
            oldest = {k for k, v in logged(log_dir).items() if days_ago(4)[:10] in v.decode()}
            shipper = ship(log_dir, *targets)
            while not (
                oldest <= set(in_pg(pg, "dead_drop_messages"))
                and oldest <= set(in_nats(nats, "DEADDROP"))
            ):
                time.sleep(1)
            nats.stop()
            pg.stop()
            everything = logged(log_dir)
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "dead-drop-logger"),
                    "prune",
                    "--log-dir",
                    str(log_dir),
                    "--retention-days",
                    "3",
                ],
                check=True,
            )
            time.sleep(args.outage)
            nats.start()
            pg.start_again()
            for writer in writers:
                writer.wait()
            time.sleep(2)
            everything.update(logged(log_dir))
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not (
                len(in_pg(pg, "dead_drop_messages")) >= len(everything)
                and nats.count("DEADDROP") >= len(everything)
            ):
                time.sleep(1)
            shipper.terminate()
            shipper.wait()
            in_table, in_stream = in_pg(pg, "dead_drop_messages"), in_nats(nats, "DEADDROP")
        logger.terminate()
        logger.wait()
    ok = in_table == everything and in_stream == everything
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(
        f"{args.kills} kill -9, a {args.outage:g} s outage of both sinks, compression,"
        f" retention, four midnights in the logs: {len(everything)} lines logged,"
        f" {len(in_table)} in PostgreSQL, {len(in_stream)} in JetStream,"
        f" each once and byte-equal: {ok};"
        f" {time.monotonic() - began:.0f} s; {load}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
