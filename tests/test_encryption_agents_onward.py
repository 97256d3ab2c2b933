"""Agent-specific keys beyond ``search`` and ``thread`` (docs/encryption.md#agent-specific-keys):
every other reader shows a sealed content as ``search`` does, through the one rule of
crypt/agentkeys.py (``shown``, ``shown_line``), or hands it on as stored, on purpose.

- ``serve``: ``/v1/messages``, ``/v1/messages/ID``, ``/v1/threads/ID`` and the events
  carry each line opened when ``serve``'s identity opens it (``search --json``'s line),
  else the line with ``search``'s placeholder as its content, the marker kept;
- the live page (headless Chromium) shows the same: contents opened or placeholders;
- ``report`` (the file, and ``serve``'s ``/report``): a busiest thread's sealed root is
  previewed opened, or with the placeholder;
- ``notify``: a content rule matches what its identity opens, and no more; with no
  identity where contents are sealed it is refused at start (one line, exit 2); what it
  sends is the line as stored, its readable text never the opened content;
- ``ship``: the lines as stored, byte for byte, whatever the identity opens;
- ``rekey``: re-seals the segments and leaves each sealed content as it was, still
  opened by its agents' keys.

Real processes: the logger, ``serve`` on a loopback port read with urllib (the events
with the suite's SSE client), ``notify`` posting to a loopback receiver, ``ship`` to a
loopback NDJSON receiver, ``rekey``; identities from Debian's ``age-keygen``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
import serverdb
from browser import Browser, chromium
from conftest import (
    DEADLINE,
    LoggerProcess,
    age_decrypt,
    age_identity,
    agent_identity,
    agent_key_args,
    encrypted_args,
    logged_ids,
    logger_command,
    wait_until,
)
from receiver import Receiver
from serving import ServeProcess, sse_events, take
from test_encryption import files_by_kind
from test_encryption_agents import MARKER, fill, logged, raw_lines, reader, readers_of
from test_ship_http import Receiver as ShipReceiver

from dead_drop_logger.crypt.agentkeys import NO_IDENTITY, NOT_SENT, NOT_YOURS

ENC = "content_enc"


@pytest.fixture
def filled_db(server_db: Path) -> Path:
    fill(server_db)
    return server_db


@pytest.fixture
def sealed_logs(filled_db: Path, tmp_path: Path) -> Path:
    return logged(filled_db, tmp_path / "logs", *agent_key_args())


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEAD_DROP_")}


def key(name: str) -> str:
    return str(agent_identity(name)[0])


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DEADLINE) as answer:
        body: bytes = answer.read()
        return body


def search_json(log_dir: Path, who: str | None) -> dict[int, bytes]:
    """``search --json``'s lines with ``who``'s key, by id."""
    out = reader(log_dir, "search", "--json", identity=who)
    return {json.loads(line)["id"]: line.encode() + b"\n" for line in out.splitlines()}


def expected_lines(log_dir: Path, who: str | None) -> dict[int, bytes]:
    """What ``serve`` must hand on with ``who``'s key: ``search --json``'s line where it
    opens; else the stored line with ``search``'s placeholder as content, marker kept."""
    stored = raw_lines(log_dir)
    opened = search_json(log_dir, who)
    found: dict[int, bytes] = {}
    for ident, line in stored.items():
        message = json.loads(line)
        if who is not None and who in readers_of(message):
            assert opened[ident] != line and ENC not in json.loads(opened[ident])
            found[ident] = opened[ident]
            continue
        assert opened[ident] == line  # (search --json: as stored)
        head, _sealed, tail = line.partition(json.dumps(message["content"]).encode())
        placeholder = NOT_YOURS if who is not None else NO_IDENTITY
        found[ident] = head + json.dumps(placeholder).encode() + tail
    return found


@pytest.mark.parametrize("who", [None, "juno", "escrow"])
def test_serve_shows_what_search_shows(sealed_logs: Path, who: str | None) -> None:
    log_dir = sealed_logs
    want = expected_lines(log_dir, who)
    if who is None:
        assert all(MARKER not in line.decode() for line in want.values())
    else:
        assert any(f"deploy key {MARKER} for vega".encode() in line for line in want.values())
    extra = [] if who is None else ["--identity", key(who)]
    with ServeProcess(log_dir, *extra) as served:
        # /v1/messages as NDJSON: every line, in search's order
        got = fetch(served.url + "v1/messages?format=ndjson").splitlines(keepends=True)
        assert got == [want[json.loads(line)["id"]] for line in got]
        assert sorted(json.loads(line)["id"] for line in got) == sorted(want)
        # the JSON page holds the same lines
        page = json.loads(fetch(served.url + "v1/messages?limit=1000&order=oldest"))
        assert [json.dumps(m, ensure_ascii=False) for m in page["messages"]] == [
            json.dumps(json.loads(line), ensure_ascii=False) for line in got
        ]
        # one message, and a thread's posts
        assert fetch(served.url + "v1/messages/1") + b"\n" == want[1]
        posts = json.loads(fetch(served.url + "v1/threads/2"))["posts"]
        assert posts and all(p["message"] == json.loads(want[p["message"]["id"]]) for p in posts)
        lines = fetch(served.url + "v1/threads/2?format=ndjson").splitlines(keepends=True)
        assert lines == [want[p["message"]["id"]] for p in posts]
        # the events, from the first line (an id before every line): the same bytes
        with (
            httpx.Client(timeout=DEADLINE) as client,
            client.stream("GET", served.url + "v1/events", headers={"Last-Event-ID": ":0"}) as r,
        ):
            events = take(sse_events(r), len(want))
        assert [e.data.encode() + b"\n" for e in events] == got


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_the_page_shows_what_search_shows(sealed_logs: Path) -> None:
    """The live page (headless Chromium) over ``serve`` with juno's key: juno's contents
    as written, the others as ``search``'s placeholder, no ciphertext anywhere."""
    with ServeProcess(sealed_logs, "--identity", key("juno")) as served, Browser() as browser:
        log = browser.navigate(served.url)
        end = time.monotonic() + DEADLINE
        while browser.evaluate("document.querySelectorAll('#feed .content').length") < len(
            raw_lines(sealed_logs)
        ):
            assert time.monotonic() < end, "the feed did not fill"
            time.sleep(0.05)
        contents = browser.evaluate(
            "[...document.querySelectorAll('#feed .content')].map(c => c.textContent)"
        )
        assert f"deploy key {MARKER} for vega" in contents
        assert f"atlas to vega {MARKER}" not in contents and NOT_YOURS in contents
        assert not [c for c in contents if c.startswith("YWdl")]  # base64 of "age-encryption"
        assert log.errors == [] and browser.log.errors == []


def test_report_previews_a_sealed_root_as_search_shows_it(sealed_logs: Path) -> None:
    log_dir = sealed_logs
    root = f"deploy key {MARKER} for vega"  # message 1, the root of thread 1 (2 replies to it)
    cases = {"escrow": root, "vega": root, "atlas": NOT_YOURS, None: NO_IDENTITY}
    for who, shown in cases.items():
        page = reader(log_dir, "report", "-o", "-", identity=who)
        assert "#1" in page and shown in page, who
        if shown != root:
            assert MARKER not in page, who
        assert "(first message not in the logs read)" not in page, who
    # serve's /report is the same page
    with ServeProcess(log_dir, "--identity", key("vega")) as served:
        assert root.encode() in fetch(served.url + "report")
    with ServeProcess(log_dir) as served:
        page = fetch(served.url + "report")
        assert NO_IDENTITY.encode() in page and MARKER.encode() not in page


def notify_config(tmp_path: Path, log_dir: Path, url: str) -> Path:
    """A content rule posting the line (webhook) and one sending readable text (slack)."""
    path = tmp_path / "notify.toml"
    path.write_text(
        f'log_dir = "{log_dir}"\n'
        f'[[notify]]\nname = "hook"\nsink = "webhook"\nurl = "{url}"\n'
        f'[notify.match]\ncontains = "{MARKER}"\n'
        f'[[notify]]\nname = "chat"\nsink = "slack"\nurl = "{url}/chat"\n'
        f'[notify.match]\ncontains = "{MARKER}"\n'
    )
    path.chmod(0o600)
    return path


def test_notify_matches_what_its_identity_opens_and_sends_it_sealed(
    filled_db: Path, sealed_logs: Path, tmp_path: Path
) -> None:
    log_dir = sealed_logs
    before = set(raw_lines(log_dir))
    hooks = Receiver()
    config = notify_config(tmp_path, log_dir, hooks.url)
    logger = LoggerProcess(filled_db, log_dir, *agent_key_args()).start()
    notify = subprocess.Popen(
        [*logger_command(), "notify", "--config", str(config), "--identity", key("juno")],
        env=env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        logger.wait_ready()
        wait_until(lambda: (log_dir / ".notify" / "chat.state.json").exists(), what="the rules")
        conn = serverdb.connect(filled_db)
        serverdb.send(conn, "juno", "vega", f"juno's {MARKER} live")  # juno's: matches
        serverdb.send(conn, "atlas", "vega", f"atlas's {MARKER} live")  # not juno's to open
        serverdb.send(conn, "vega", "juno", "no marker here")  # juno's, not matching
        serverdb.send(conn, "vega", "all", f"broadcast {MARKER} live")  # everyone's
        conn.close()
        want = serverdb.all_ids(filled_db)
        wait_until(lambda: logged_ids(log_dir) == want, what="the live sends logged")
        stored = raw_lines(log_dir)
        opened = {i: json.loads(line) for i, line in search_json(log_dir, "escrow").items()}
        matching = [
            i
            for i in want
            if i not in before
            and "juno" in readers_of(json.loads(stored[i]))
            and MARKER in opened[i]["content"]
        ]
        assert len(matching) >= 3  # (juno's and the broadcast, with the lead's CC copies)
        wait_until(
            lambda: (
                len([r for r in hooks.received() if r.path == "/hook"]) >= len(matching)
                and len([r for r in hooks.received() if r.path == "/hook/chat"]) >= len(matching)
            ),
            what="the notifications",
        )
    finally:
        notify.terminate()
        _out, err = notify.communicate(timeout=DEADLINE)
        assert logger.stop() == 0, logger.stderr()
        hooks.close()
    assert notify.returncode == 0, err
    assert b"matched only where the identity opens them" in err
    posted = [r for r in hooks.received() if r.path == "/hook"]
    # exactly the lines juno's key opens and that hold the marker, each as stored
    assert sorted(r.headers["webhook-id"] for r in posted) == sorted(f":{i}" for i in matching)
    for request in posted:
        ident = int(request.headers["webhook-id"][1:])
        assert request.body + b"\n" == stored[ident]  # the sealed line, byte for byte
    for request in [r for r in hooks.received() if r.path == "/hook/chat"]:
        text = json.loads(request.body)["text"]
        assert NOT_SENT in text and MARKER not in text, text


def test_notify_refuses_a_content_rule_it_could_never_fire(
    filled_db: Path, sealed_logs: Path, tmp_path: Path
) -> None:
    config = notify_config(tmp_path, sealed_logs, "http://127.0.0.1:9/hook")
    done = subprocess.run(
        [*logger_command(), "notify", "--config", str(config)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "notify rule 'hook' matches contents" in lines[0], lines
    assert "no identity is set" in lines[0] and lines[0].startswith("dead-drop-logger: error: ")
    # and a logger about to seal contents, in a new directory (no marker yet), alike
    fresh = tmp_path / "fresh"
    config = notify_config(tmp_path, fresh, "http://127.0.0.1:9/hook")
    done = subprocess.run(
        [*logger_command(), "run", "--config", str(config), "--db", str(filled_db),
         *agent_key_args()],
        env=env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "notify rule 'hook' matches contents" in done.stderr
    assert not (fresh / "messages-current.json").exists()
    # a rule on names alone needs no key there
    names = tmp_path / "names.toml"
    names.write_text(
        f'log_dir = "{sealed_logs}"\n[[notify]]\nname = "names"\nsink = "webhook"\n'
        'url = "http://127.0.0.1:9/hook"\n[notify.match]\nfrom = "juno"\n'
    )
    names.chmod(0o600)
    alone = subprocess.Popen(
        [*logger_command(), "notify", "--config", str(names)],
        env=env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: (
                (sealed_logs / ".notify" / "names.state.json").exists() or alone.poll() is not None
            ),
            what="the rule to start",
        )
        assert alone.poll() is None
    finally:
        alone.terminate()
        assert alone.wait(DEADLINE) == 0


def test_ship_delivers_the_lines_as_stored(sealed_logs: Path) -> None:
    """With a key that opens every content, ``ship`` still delivers each line as
    logged: the sink gets what the log holds (sealed), once each."""
    stored = raw_lines(sealed_logs)
    receiver = ShipReceiver(down=0)
    receiver.thread.start()
    proc = subprocess.Popen(
        [*logger_command(), "ship", "--log-dir", str(sealed_logs), "--to",
         receiver.url + "/ingest", "--identity", key("escrow"), "--batch-ms", "200"],
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip

    def received() -> list[bytes]:
        return [ln for _p, _h, body in receiver.of("/ingest") for ln in body.splitlines(True)]

    try:
        wait_until(lambda: len(received()) >= len(stored), what="every line shipped")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=DEADLINE)
        receiver.server.shutdown()
        receiver.server.server_close()
    assert proc.returncode == 0, err
    got = [line if line.endswith(b"\n") else line + b"\n" for line in received()]
    assert sorted(got) == sorted(stored.values())
    assert all(json.loads(line)[ENC] for line in got) and MARKER.encode() not in b"".join(got)


def test_rekey_leaves_the_sealed_contents_as_they_are(filled_db: Path, tmp_path: Path) -> None:
    log_dir = logged(filled_db, tmp_path / "logs", *encrypted_args(), *agent_key_args())
    before = files_by_kind(log_dir)["messages"]
    new_key, new_recipient = agent_identity("rekeyed")
    done = subprocess.run(
        [*logger_command(), "rekey", "--log-dir", str(log_dir), "--to", new_recipient,
         "--identity", str(age_identity()[0])],
        env=env(),
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the segments open with the new key only, and hold the same lines, byte for byte
    assert segment_lines(log_dir, new_key) == before
    # the new segments' key and an agent's: that agent's contents open, as before
    both = tmp_path / "both.txt"
    both.write_text(new_key.read_text() + agent_identity("vega")[0].read_text())
    out = search_text(log_dir, both)
    assert f"deploy key {MARKER} for vega" in out and "not readable with this identity" in out
    # the escrow's: every content, as a plain logger wrote it
    plain = logged(filled_db, tmp_path / "plain")
    escrow = tmp_path / "escrow.txt"
    escrow.write_text(new_key.read_text() + agent_identity("escrow")[0].read_text())
    assert search_text(log_dir, escrow) == reader(plain, "search").replace(str(plain), str(log_dir))


def segment_lines(log_dir: Path, identity: Path) -> bytes:
    """The message segments' lines, opened by ``age -d`` with ``identity`` (and by none
    with the old key)."""
    segments = sorted(p for p in log_dir.glob("messages-*.json.age"))
    assert segments
    for path in segments:  # (the old key opens none now)
        old = subprocess.run(
            ["age", "-d", "-i", str(age_identity()[0]), str(path)], capture_output=True
        )
        assert old.returncode != 0
    return b"".join(age_decrypt(p, identity) for p in segments)


def search_text(log_dir: Path, identity: Path) -> str:
    done = subprocess.run(
        [*logger_command(), "search", "--log-dir", str(log_dir), "--identity", str(identity)],
        env=env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
