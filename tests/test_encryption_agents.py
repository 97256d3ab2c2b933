"""Agent-specific keys (docs/encryption.md#agent-specific-keys), with the real logger,
the real readers and Debian's ``age`` command reading what they wrote:

- each line's content opens with ``age -d`` for the sender's key, the recipient's (a
  broadcast: every agent's) and the escrow's, and not for a third agent's; every other
  field is the plaintext run's, byte for byte;
- a unique marker in the contents is found nowhere on disk after the logger and the
  readers ran (log directory, temporary directory, home);
- the readers: what the identity opens is shown, the rest a placeholder; ``--contains``
  finds only what it opens; ``stats --json`` and ``agents`` the same with or without;
- the settings checked at start: one line ``config.toml:LINE: ...``, exit 2;
- with ``encrypt_to`` too, both layers open with ``age``.
(Killed at every write/fsync/rename: tests/faults/test_crash_points.py, "agent-keys".)
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import serverdb
from conftest import (
    KEYED_AGENTS,
    LoggerProcess,
    age_decrypt,
    agent_identity,
    agent_key_args,
    encrypted_args,
    logged_ids,
    logger_command,
    wait_until,
)
from test_encryption import run_until_logged, scan

MARKER = "zq-agent-marker-41b9d2"
ENC = "content_enc"


def fill(db: Path) -> None:
    """Conversations between keyed agents, with one that has no key (orion), a
    broadcast, a CC to the lead on each send, and hostile contents."""
    conn = serverdb.connect(db)
    for name in ("juno", "vega", "atlas", "orion", "lead"):
        serverdb.register(conn, name)
    serverdb.send(conn, "juno", "vega", f"deploy key {MARKER} for vega")
    serverdb.send(conn, "vega", "juno", f'quote "{MARKER}" \\ and\u2028sep', reply_to=1)
    serverdb.send(conn, "atlas", "vega", f"atlas to vega {MARKER}")
    serverdb.send(conn, "orion", "all", f"broadcast {MARKER}")
    serverdb.send(conn, "juno", "orion", f"to a keyless agent {MARKER}")
    serverdb.send(conn, "vega", "atlas", b"blob " + MARKER.encode())
    conn.close()


def logged(db: Path, log_dir: Path, *args: str) -> Path:
    """``log_dir`` with every message of ``db`` logged by the real logger run with
    ``args`` (its history imported), then stopped."""
    run_until_logged(LoggerProcess(db, log_dir, "--import-historical", *args), db, log_dir)
    return log_dir


@pytest.fixture
def filled_db(server_db: Path) -> Path:
    """The server database holding :func:`fill`'s messages."""
    fill(server_db)
    return server_db


@pytest.fixture
def sealed_logs(filled_db: Path, tmp_path: Path) -> Path:
    """:func:`fill`'s messages logged with agent keys (``tmp_path/logs``)."""
    return logged(filled_db, tmp_path / "logs", *agent_key_args())


@pytest.fixture
def plain_logs(filled_db: Path, tmp_path: Path) -> Path:
    """The same messages logged by a plain logger (``tmp_path/plain``)."""
    return logged(filled_db, tmp_path / "plain")


def raw_lines(log_dir: Path) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for path in sorted(log_dir.glob("messages-*.json")):
        if path.is_symlink():
            continue
        for line in path.read_bytes().splitlines(keepends=True):
            found[json.loads(line)["id"]] = line
    return found


def age_open(sealed: bytes, key: Path) -> bytes | None:
    """``sealed`` opened by Debian's ``age -d -i KEY`` (None: it refused)."""
    done = subprocess.run(["age", "-d", "-i", str(key)], input=sealed, capture_output=True)
    return done.stdout if done.returncode == 0 else None


def readers_of(message: dict[str, Any]) -> set[str]:
    """Who should open ``message``: its agents that have a key (a broadcast, or a CC of
    one: every keyed agent), and the escrow."""
    names = {message["from_agent"], message["to_agent"], message.get("cc_original_to")}
    if "all" in names:
        return set(KEYED_AGENTS)
    return {n for n in names if n in KEYED_AGENTS} | {"escrow"}


def config_file(tmp_path: Path, extra: str = "") -> Path:
    keys = "\n".join(f'{n} = "{agent_identity(n)[1]}"' for n in KEYED_AGENTS[:-1])
    path = tmp_path / "config.toml"
    path.write_text(
        "encrypt_content_to_agents = true\n"
        f'escrow_to = ["{agent_identity("escrow")[1]}"]\n'
        f"{extra}"
        f"[agents_keys]\n{keys}\n"
    )
    return path


def test_each_content_opens_for_its_agents_and_the_escrow_only(
    filled_db: Path, plain_logs: Path, tmp_path: Path
) -> None:
    server_db, plain_dir, sealed_dir = filled_db, plain_logs, tmp_path / "sealed"
    config = config_file(tmp_path)  # the settings file's [agents_keys] this time
    sealed = LoggerProcess(server_db, sealed_dir, "--import-historical", "--config", str(config))
    run_until_logged(sealed, server_db, sealed_dir)
    assert "agent 'orion' has no key in [agents_keys]" in sealed.stderr()
    plain, got = raw_lines(plain_dir), raw_lines(sealed_dir)
    assert sorted(got) == sorted(plain) == serverdb.all_ids(server_db)
    opened = 0
    for ident, line in got.items():
        message, original = json.loads(line), json.loads(plain[ident])
        # every other field as logged plain, in place: only the content's value differs,
        # and the marker is the last field
        old = plain[ident]
        head = old.index(b'"content":') + len(b'"content":')
        tail = old.index(b',"timestamp":')
        assert line == (
            old[:head]
            + json.dumps(message["content"]).encode()
            + old[tail:-2]
            + b',"content_enc":"'
            + message[ENC].encode()
            + b'"}\n'
        )
        assert {k: v for k, v in message.items() if k not in ("content", ENC)} == {
            k: v for k, v in original.items() if k != "content"
        }
        blob = base64.b64decode(message["content"], validate=True)
        assert blob.startswith(b"age-encryption.org/v1\n")
        want = (
            original["content"].encode()
            if isinstance(original["content"], str)
            else json.dumps(original["content"], separators=(",", ":")).encode()
        )
        assert message[ENC] == ("age" if isinstance(original["content"], str) else "age-json")
        should = readers_of(original)
        for name in KEYED_AGENTS:
            text = age_open(blob, agent_identity(name)[0])
            if name in should:
                assert text == want, (ident, name)
                opened += 1
            else:
                assert text is None, (ident, name, "a third agent's key opened it")
    assert opened > len(got) * 2  # (each opened by its two agents and the escrow at least)
    # a send is one age file: the lead's CC copy holds its original's ciphertext
    messages = {ident: json.loads(line) for ident, line in got.items()}
    copies = [m for m in messages.values() if m["is_cc"]]
    assert copies
    for copy in copies:
        assert copy["content"] == messages[copy["id"] - 1]["content"], copy["id"]


def test_no_byte_of_content_on_disk(filled_db: Path, tmp_path: Path) -> None:
    server_db = filled_db
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    log_dir = tmp_path / "logs"
    env = {"TMPDIR": str(temp), "HOME": str(home)}
    proc = LoggerProcess(server_db, log_dir, "--import-historical", *agent_key_args(), env=env)
    run_until_logged(proc, server_db, log_dir)
    proc.start()  # and live: sends followed as they come
    proc.wait_ready()
    serverdb.send_many(server_db, 10, prefix=f"live {MARKER}")
    want = serverdb.all_ids(server_db)
    wait_until(lambda: logged_ids(log_dir) == want, what="the live sends logged")
    assert proc.stop() == 0, proc.stderr()
    reader_env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}, **env}
    escrow = ["--identity", str(agent_identity("escrow")[0])]
    for args in (
        ["search", MARKER, *escrow],
        ["search", "--json", MARKER, *escrow],
        ["thread", "1", *escrow],
        ["stats"],
        ["agents"],
    ):
        done = subprocess.run(
            [*logger_command(), *args, "--log-dir", str(log_dir)],
            env=reader_env,
            capture_output=True,
        )
        assert done.returncode == 0, (args, done.stderr)
        if "--identity" in args:  # the readers did open the contents
            assert MARKER.encode() in done.stdout, args
    assert scan([log_dir, temp, home], MARKER.encode()) == []
    # (the same scan finds it in plaintext: tests/test_encryption.py's plain run)


def reader(log_dir: Path, *args: str, identity: str | None = None, code: int = 0) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    extra = [] if identity is None else ["--identity", str(agent_identity(identity)[0])]
    done = subprocess.run(
        [*logger_command(), *args, "--log-dir", str(log_dir), *extra],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == code, (args, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def test_readers_open_what_the_identity_can(sealed_logs: Path, plain_logs: Path) -> None:
    log_dir = sealed_logs
    # juno reads its own conversations (and the broadcast), not atlas's with vega
    text = reader(log_dir, "search", "--oneline", identity="juno")
    lines = text.splitlines()
    assert any(f"deploy key {MARKER} for vega" in ln for ln in lines)
    assert any(f"broadcast {MARKER}" in ln for ln in lines)
    atlas = [ln for ln in lines if "atlas → vega" in ln]
    assert atlas and all("not readable with this identity" in ln for ln in atlas)
    assert MARKER not in "".join(atlas)
    # --contains: only what the identity opens
    mine = {
        m["id"]
        for m in map(json.loads, raw_lines(log_dir).values())
        if "juno" in readers_of(m) and m[ENC] == "age"
    }
    assert reader(log_dir, "search", "-c", MARKER, identity="juno").strip() == str(len(mine))
    every = sum(1 for m in map(json.loads, raw_lines(log_dir).values()) if m[ENC] == "age")
    assert reader(log_dir, "search", "-c", MARKER, identity="escrow").strip() == str(every)
    assert reader(log_dir, "search", "-c", MARKER, code=1).strip() == "0"  # (none: exit 1)
    # --json: opened lines as if logged plain, the others as stored
    for line in reader(log_dir, "search", "--json", "--from", "juno", identity="vega").splitlines():
        message = json.loads(line)
        if "vega" in readers_of(message):
            assert ENC not in message and MARKER in message["content"]
        else:
            assert message[ENC] == "age"
    # no identity: every content a placeholder, the metadata all there
    none = reader(log_dir, "search")
    assert "no identity given" in none and MARKER not in none
    assert "juno → vega" in none
    # thread: opened where it can, the CC copies of the lead still recognised
    thread = reader(log_dir, "thread", "2", identity="vega")
    assert f'quote "{MARKER}"' in thread and f"deploy key {MARKER}" in thread
    # the escrow opens everything: search and thread show exactly a plaintext run's
    plain_dir = plain_logs
    for command in (["search"], ["thread", "2"], ["thread", "3"], ["search", "--json"]):
        want = reader(plain_dir, *command).replace(str(plain_dir), str(log_dir))
        assert reader(log_dir, *command, identity="escrow") == want, command
    # stats and agents need no key: the same with none, one, or the escrow's
    for command in (["stats", "--json"], ["agents", "--json"]):
        outputs = {reader(log_dir, *command, identity=who) for who in (None, "juno", "escrow")}
        assert len(outputs) == 1, command


def run_refused(*args: str) -> str:
    done = subprocess.run(
        [*logger_command(), "run", *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dead-drop-logger: error: "), lines
    return lines[0]


def test_the_settings_are_checked_at_start(tmp_path: Path) -> None:
    where = ["--db", str(tmp_path / "db"), "--log-dir", str(tmp_path / "logs")]
    juno = agent_identity("juno")[1]
    cases = {
        # the table without the flag: contents would be plain while keys are written down
        f'[agents_keys]\njuno = "{juno}"\n': "config.toml:1: [agents_keys] is set but",
        # the flag without an escrow
        f'encrypt_content_to_agents = true\n[agents_keys]\njuno = "{juno}"\n': (
            "config.toml:1: encrypt_content_to_agents needs escrow_to"
        ),
        # the flag without keys
        f'encrypt_content_to_agents = true\nescrow_to = ["{juno}"]\n': (
            "config.toml:1: encrypt_content_to_agents needs an [agents_keys] table"
        ),
        # a key that is not one: its own line
        f'encrypt_content_to_agents = true\nescrow_to = ["{juno}"]\n'
        '[agents_keys]\nvega = "age1nope"\n': "config.toml:4: agents_keys.vega: ",
        f'encrypt_content_to_agents = true\nescrow_to = ["/nowhere/keys.txt"]\n'
        f'[agents_keys]\njuno = "{juno}"\n': "config.toml:2: escrow_to: ",
    }
    config = tmp_path / "config.toml"
    for text, said in cases.items():
        config.write_text(text)
        line = run_refused("--config", str(config), *where)
        assert said in line, (text, line)
    assert not (tmp_path / "logs").exists()
    # on the command line alike
    line = run_refused(*where, "--agent-key", f"juno={juno}")
    assert "--encrypt-content-to-agents" in line
    line = run_refused(*where, "--encrypt-content-to-agents", "--agent-key", f"juno={juno}")
    assert "--escrow-to" in line
    line = run_refused(
        *where, "--encrypt-content-to-agents", "--escrow-to", juno, "--agent-key", "vega=age1x"
    )
    assert "vega" in line


def test_with_sealed_segments_too_both_layers_open_with_age(
    filled_db: Path, tmp_path: Path
) -> None:
    server_db = filled_db
    log_dir = logged(server_db, tmp_path / "logs", *encrypted_args(), *agent_key_args())
    segments = sorted(log_dir.glob("messages-*.json.age"))
    assert segments and not list(log_dir.glob("messages-*.json"))
    lines = b"".join(age_decrypt(p) for p in segments).splitlines()
    assert [json.loads(ln)["id"] for ln in lines] == serverdb.all_ids(server_db)
    first = json.loads(lines[0])
    blob = base64.b64decode(first["content"])
    assert age_open(blob, agent_identity("vega")[0]) == f"deploy key {MARKER} for vega".encode()
    assert age_open(blob, agent_identity("atlas")[0]) is None
    # a reader with the segments' identity and no agent key: the metadata, placeholders
    key = str(encrypted_args()[encrypted_args().index("--identity") + 1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}
    done = subprocess.run(
        [*logger_command(), "search", "--log-dir", str(log_dir), "--identity", key],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "juno → vega" in done.stdout and "not readable with this identity" in done.stdout
    # both keys in one identity file: the segments and vega's contents open
    both = tmp_path / "both.txt"
    both.write_text(Path(key).read_text() + agent_identity("vega")[0].read_text())
    done = subprocess.run(
        [*logger_command(), "search", "--log-dir", str(log_dir), "--identity", str(both)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"deploy key {MARKER} for vega" in done.stdout
    assert f"atlas to vega {MARKER}" in done.stdout  # (vega received it)
    assert "not readable with this identity" in done.stdout  # juno to orion: not vega's


def test_a_logger_without_the_keys_writes_no_plain_content_there(
    filled_db: Path, sealed_logs: Path
) -> None:
    server_db, log_dir = filled_db, sealed_logs
    plain = LoggerProcess(server_db, log_dir)  # the keys forgotten at a restart
    plain.start()
    serverdb.send_many(server_db, 3, prefix=f"after {MARKER}")
    wait_until(
        lambda: "seals each message's content to its agents" in plain.stderr(),
        what="the refusal",
    )
    assert plain.stop() == 0, plain.stderr()
    assert scan([log_dir], MARKER.encode()) == []
    # with the keys again, what was refused is logged, sealed, once
    run_until_logged(LoggerProcess(server_db, log_dir, *agent_key_args()), server_db, log_dir)
    assert all(json.loads(line)["content_enc"] for line in raw_lines(log_dir).values())


def test_restart_gives_the_recorded_keys_back(tmp_path: Path) -> None:
    """What a daemon records of its settings (its PID file's sidecar) starts it again
    with the same keys (``restart`` of a daemon that did not start keeps them)."""
    from dead_drop_logger.control import daemon, options

    params: dict[str, Any] = {
        "db": (str(tmp_path / "db"),),
        "log_dir": str(tmp_path / "logs"),
        "poll_interval": 1.0,
        "import_historical": False,
        "utc": False,
        "retention_days": 30,
        "max_bytes": None,
        "keep_files": None,
        "compress_after": None,
        "no_watch": False,
        "encrypt_content_to_agents": True,
        "agents_keys": (f"juno={agent_identity('juno')[1]}", f"vega={agent_identity('vega')[1]}"),
        "escrow_to": (agent_identity("escrow")[1],),
    }
    settings = options.settings_from(params)
    assert settings.encrypt_content_to_agents
    assert dict(k.split("=", 1) for k in settings.agents_keys)["vega"] == agent_identity("vega")[1]
    recorded = daemon.held_pid_file(settings, tmp_path / "pid").info["options"]
    assert isinstance(recorded, dict)
    again = json.loads(json.dumps(recorded))  # as the sidecar stores it
    assert options.settings_from({**again, "db": tuple(again["db"])}) == settings


def test_a_null_content_stays_and_every_other_byte_is_kept() -> None:
    """The sealer on lines the server's schema never makes but a hostile database can:
    a NULL content (nothing to hide: left as is), odd numbers, separators escaped."""
    from dead_drop_logger.crypt.agentkeys import ContentSealer

    warned: list[str] = []
    sealer = ContentSealer(
        {"juno": agent_identity("juno")[1]}, [agent_identity("escrow")[1]], warn=warned.append
    )
    null = b'{"id":1,"from_agent":"juno","to_agent":"vega","content":null,"x":1e999}\n'
    odd = '{"id":2,"from_agent":"juno","to_agent":"zed","content":"a\\u2028b \\"q\\"","n":-0.0}\n'
    out = sealer.seal_lines(null + odd.encode())
    first, second = out.split(b"\n")[:2]
    assert first + b"\n" == null
    assert second.startswith(b'{"id":2,"from_agent":"juno","to_agent":"zed","content":"')
    assert second.endswith(b'","n":-0.0,"content_enc":"age"}')
    blob = base64.b64decode(json.loads(second)["content"])
    assert age_open(blob, agent_identity("juno")[0]) == 'a\u2028b "q"'.encode()
    assert age_open(blob, agent_identity("vega")[0]) is None
    assert warned == [  # once, for the agent without a key (a NULL content seals nothing)
        "agent 'zed' has no key in [agents_keys]: its messages are sealed to the other"
        " agent's key and the escrow only"
    ]
