"""The rsyslog recipe of docs/ship.md, for real: ``imfile`` (with
``persistStateAfterSubmission="on"`` and direct queues) reads the day files and
forwards each line over TCP to a second rsyslog on loopback, which writes them out.
Every line arrives exactly once, through ``kill -9`` of the forwarding rsyslog at
random moments and a new day's file (a midnight in the logs) while it runs."""

from __future__ import annotations

import datetime as dt
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import serverdb
from conftest import LoggerProcess, wait_until
from sinks import free_port

LONG = 180.0
DOC = Path(__file__).parent.parent / "docs" / "ship.md"


def rsyslogd() -> str:
    found = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None
    )
    assert found, "rsyslog is not installed (Debian: apt-get install rsyslog; .ci/run does)"
    return found


def recipe(name: str) -> str:
    """A recipe's text as docs/ship.md shows it (between ``# BEGIN name`` and ``# END``)."""
    text = DOC.read_text()
    return text.split(f"# BEGIN {name}\n", 1)[1].split("# END", 1)[0]


def start(config: Path, work: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [rsyslogd(), "-n", "-f", str(config), "-i", str(work / "rsyslogd.pid")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stderr.txt", "ab"),
    )


def test_rsyslog_recipe_forwards_every_line_once_through_kill9_and_a_midnight(
    tmp_path: Path,
) -> None:
    db = tmp_path / "messages.db"
    serverdb.create(db)
    log_dir = tmp_path / "logs"
    log_dir.mkdir(mode=0o700)
    sender_dir, receiver_dir = tmp_path / "sender", tmp_path / "receiver"
    sender_dir.mkdir()
    receiver_dir.mkdir()
    port = free_port()
    out = receiver_dir / "received.json"
    receiver_conf = receiver_dir / "rsyslog.conf"
    receiver_conf.write_text(
        recipe("receiver")
        .replace("/var/lib/dead-drop-receiver", str(receiver_dir))
        .replace("/srv/dead-drop/received.json", str(out))
        .replace("10514", str(port))
    )
    sender_conf = sender_dir / "rsyslog.conf"
    sender_conf.write_text(
        recipe("sender")
        .replace("/var/lib/dead-drop-rsyslog", str(sender_dir))
        .replace("/home/me/.dead-drop/logs", str(log_dir))
        .replace("10514", str(port))
    )
    receiver = start(receiver_conf, receiver_dir)
    logger = LoggerProcess(db, log_dir, "--retention-days", "0")
    logger.start()
    logger.wait_ready()
    sender = start(sender_conf, sender_dir)
    rng = random.Random(5)
    try:
        conn = serverdb.connect(db)
        today = dt.datetime.now()
        tomorrow = today + dt.timedelta(days=1)
        for step in range(8):
            stamp = (today if step < 4 else tomorrow).isoformat()  # a new day's file
            for i in range(60):
                serverdb.send(conn, "juno", "atlas", f"step {step} line {i}", timestamp=stamp)
            time.sleep(rng.uniform(0.05, 0.6))
            if step in (1, 3, 5):  # kill -9 the forwarder at a random moment, restart it
                sender.send_signal(signal.SIGKILL)
                sender.wait(60)
                sender = start(sender_conf, sender_dir)
        conn.close()
        logged: list[bytes] = []
        wait_until(lambda: len(log_lines(log_dir)) == 8 * 60 * 2, LONG, "all logged")
        logged = log_lines(log_dir)
        assert len({p.name for p in log_dir.glob("messages-2*.json")}) == 2
        wait_until(
            lambda: out.exists() and len(received(out)) >= len(logged), LONG, "everything received"
        )
        time.sleep(2)  # anything more would be a duplicate: let it arrive
        got = received(out)
        assert Counter(got) == Counter(logged)
        assert max(Counter(got).values()) == 1
    finally:
        for proc in (sender, receiver):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(60)
        logger.stop()


def log_lines(log_dir: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(log_dir.glob("messages-2*.json")):
        lines += path.read_bytes().split(b"\n")[:-1]
    return lines


def received(out: Path) -> list[bytes]:
    return out.read_bytes().split(b"\n")[:-1]
