"""notify in the real ``dead-drop-logger`` process: rules refused before anything starts,
secrets from the environment, delivery inside ``run`` and by ``notify`` alone, ``notify
--test``, ``status``, a slow endpoint that delays neither logging nor another rule, and
kill -9 under a steady writer with nothing lost and only the in-flight event repeated."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import serverdb
from conftest import LoggerProcess, logged_ids, logger_command, run_command, wait_until
from notifyutil import SECRET
from receiver import Answer, Receiver
from standardwebhooks.webhooks import Webhook

from dead_drop_logger.notify.state import saved_states

E = "dead-drop-logger: error: "


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def hook(name: str, url: str, extra: str = "") -> str:
    return f'\n[[notify]]\nname = "{name}"\nsink = "webhook"\nurl = "{url}"\n{extra}\n'


BAD_RULES = [
    (
        'log_dir = "/tmp/x"\n\n[[notify]]\nname = "a"\nsink = "pager"\nurl = "http://127.0.0.1:1/"\n',
        5,
        "unknown sink 'pager'",
    ),
    ('[[notify]]\nname = "a"\nsink = "webhook"\nurl = "ftp://example/hook"\n', 4, "not a http"),
    ('[[notify]]\nname = "a"\nsink = "webhook"\nurl = "http://:80/"\n', 4, "not a http"),
    (
        '[[notify]]\nname = "a"\nsink = "webhook"\nurl = "http://127.0.0.1:9/"\n'
        '[notify.match]\ncontains = "x"\nsender = "juno"\n',
        7,
        "unknown filter 'sender'",
    ),
    (
        '[[notify]]\nname = "a"\nsink = "webhook"\nurl = "http://127.0.0.1:9/"\n'
        'match = { from = "juno", colour = "red" }\n',
        5,
        "unknown filter 'colour'",
    ),
    (
        '[[notify]]\nname = "a"\nsink = "webhook"\nurl = "http://127.0.0.1:9/"\n\n'
        '[[notify]]\nname = "a"\nsink = "slack"\nurl = "https://hooks.example/x"\n',
        7,
        "a second rule named 'a'",
    ),
    (
        '[[notify]]\nname = "a"\nsink = "command"\ncommand = "notify-send hi"\n',
        4,
        "command must be a list",
    ),
    (
        '[[notify]]\nname = "a"\nsink = "webhook"\nurl = "http://127.0.0.1:9/"\n'
        'quiet_hours = "22-7"\n',
        5,
        "quiet_hours",
    ),
    (
        '[[notify]]\nname = "a"\nsink = "webhook"\nurl = "http://127.0.0.1:9/"\n'
        '[notify.match]\nregex = "("\n',
        6,
        "match.regex",
    ),
]


@pytest.mark.parametrize(("text", "line", "what"), BAD_RULES)
def test_a_bad_rule_is_one_line_and_exit_2_before_anything_starts(
    no_user_config, server_db, log_dir, text, line, what
):
    write_config(no_user_config, text)
    for command in (["run", "--db", str(server_db), "--log-dir", str(log_dir)], ["search", "x"]):
        done = run_command(*command, env=dict(os.environ))
        assert done.returncode == 2, done.stderr
        [message] = done.stderr.splitlines()
        assert message.startswith(f"{E}{no_user_config}:{line}: "), message
        assert what in message
    assert not log_dir.exists()  # nothing started


def test_a_secret_in_a_file_others_can_read_is_refused(no_user_config, server_db, log_dir):
    text = hook("a", "http://127.0.0.1:9/hook", f'secret = "{SECRET}"')
    write_config(no_user_config, text, 0o644)
    done = run_command(
        "run", "--db", str(server_db), "--log-dir", str(log_dir), env=dict(os.environ)
    )
    assert done.returncode == 2
    [message] = done.stderr.splitlines()
    assert message.startswith(f"{E}{no_user_config}:6: rule 'a' holds a secret"), message
    assert "0644" in message and SECRET not in message
    no_user_config.chmod(0o600)
    done = run_command("notify", "--test", "nope", env=dict(os.environ))
    assert done.returncode == 2 and "no notify rule 'nope'" in done.stderr  # the file is accepted


def test_a_secret_from_the_environment(no_user_config, server_db, log_dir, receiver):
    text = hook("signed", receiver.url, 'secret_env = "HOOK_SECRET"')
    write_config(no_user_config, text, 0o644)  # no secret in it: others may read it
    done = run_command("notify", "--test", "signed", env=dict(os.environ))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"{E}{no_user_config}:6: rule 'signed': secret_env HOOK_SECRET is not set in the"
        " environment"
    )
    done = run_command("notify", "--test", "signed", env={**os.environ, "HOOK_SECRET": SECRET})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"webhook {receiver.url}: 200 ok")
    [request] = receiver.received()
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["content"] == "a test of notify rule 'signed'"


def test_notify_test_reports_a_failing_receiver(no_user_config, receiver):
    write_config(no_user_config, hook("down", receiver.url))
    receiver.plan(Answer(503, body=b"maintenance"))
    done = run_command("notify", "--test", "down", env=dict(os.environ))
    assert done.returncode == 1
    assert done.stdout.strip() == f"webhook {receiver.url}: 503 maintenance"


def test_run_delivers_and_status_shows_each_rule(
    no_user_config, server_db, log_dir, receiver, logger
):
    text = (
        hook("blocked", receiver.url, f'secret = "{SECRET}"')
        + '[notify.match]\ncontains = "blocked"\n'
    )
    text += hook("everything", receiver.url.replace("/hook", "/all"))
    write_config(no_user_config, text)
    pid_file = log_dir.parent / "logger.pid"
    proc = logger("--pid-file", str(pid_file)).start()
    proc.wait_ready()
    wait_until(lambda: (log_dir / ".notify" / "blocked.state.json").exists(), what="rules started")
    conn = serverdb.connect(server_db)
    serverdb.send(conn, "juno", "lead", "blocked on the deploy")
    serverdb.send(conn, "atlas", "vega", "all fine")
    wait_until(lambda: len(receiver.received()) == 4, what="deliveries")  # 1 + 3 lines
    # A request is received before it is answered, and a rule saves its delivery (what
    # status reads) after the answer: wait for the saves, then status must say it all.
    wait_until(
        lambda: sum(s.delivered for s in saved_states(log_dir).values()) >= 4,
        what="the deliveries saved",
    )
    blocked = [r for r in receiver.received() if r.path == "/hook"]
    [request] = blocked
    assert Webhook(SECRET).verify(request.body, request.headers)["from_agent"] == "juno"
    assert request.headers["webhook-id"] == f":{request.json()['id']}"
    done = run_command("status", "--pid-file", str(pid_file), env=dict(os.environ))
    lines = done.stdout.splitlines()
    assert lines[0].startswith("dead-drop-logger is running")
    assert f"  notify blocked (webhook {receiver.url}): matched 1, delivered 1, pending 0" in lines
    assert any(
        line.startswith("  notify everything (webhook") and "matched 3, delivered 3" in line
        for line in lines
    )
    status = run_command("status", "--json", "--pid-file", str(pid_file), env=dict(os.environ))
    assert proc.stop() == 0
    data = json.loads(status.stdout)
    rows = {row["name"]: row for row in data["notify"]}
    assert rows["everything"]["delivered"] == 3 and rows["everything"]["pending"] == 0
    assert rows["blocked"]["failing_since"] is None and rows["blocked"]["dead"] == 0


def test_notify_alone_reads_what_run_logged(no_user_config, server_db, log_dir, receiver, logger):
    write_config(no_user_config, f'log_dir = "{log_dir}"\n' + hook("alone", receiver.url))
    plain = write_config(log_dir.parent / "plain.toml", "# no rules\n")
    proc = logger("--config", str(plain)).start()
    proc.wait_ready()
    alone = subprocess.Popen(
        [*logger_command(), "notify"], stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: (log_dir / ".notify" / "alone.state.json").exists(), what="the rule")
        serverdb.send_many(server_db, 3)
        wait_until(lambda: len(receiver.received()) == 6, what="deliveries")
        # run on the same settings: the rule is already delivered by notify, so run waits
        both = logger().start()
        both.wait_ready()
        wait_until(lambda: "run by another process" in both.stderr(), what="run to see it")
        serverdb.send_many(server_db, 1)
        wait_until(lambda: len(receiver.received()) == 8, what="deliveries")
        assert both.stop() == 0
    finally:
        alone.send_signal(signal.SIGTERM)
        assert alone.wait(30) == 0
        assert proc.stop() == 0
    assert sorted(receiver.ids()) == sorted(f":{i}" for i in logged_ids(log_dir))  # each once


def test_a_slow_endpoint_delays_neither_logging_nor_another_rule(
    no_user_config, server_db, log_dir, receiver, logger
):
    slow = Receiver()
    slow.default = Answer(stall=120.0)  # accepts, then says nothing for two minutes
    try:
        text = hook("slow", slow.url, 'timeout = "5m"') + hook("fast", receiver.url)
        write_config(no_user_config, text)
        proc = logger().start()
        proc.wait_ready()
        wait_until(lambda: (log_dir / ".notify" / "slow.state.json").exists(), what="rules")
        serverdb.send(
            serverdb.connect(server_db), "juno", "atlas", "first"
        )  # the slow one stalls on it
        for i in range(5):
            serverdb.send(serverdb.connect(server_db), "juno", "atlas", f"next {i}")
        wait_until(lambda: len(logged_ids(log_dir)) == 6 * 2, what="every line logged")
        wait_until(lambda: len(receiver.received()) == 12, what="the fast rule")
        assert slow.received() == []  # the slow one has still not answered its first
        assert proc.stop() == 0  # and it does not hold up the stop either
    finally:
        slow.close()


def test_kill_9_under_a_steady_writer_loses_nothing(
    no_user_config, server_db, log_dir, receiver, logger
):
    receiver.default = Answer(stall=0.01)  # deliveries take a moment: kills land in flight
    write_config(no_user_config, hook("all", receiver.url))
    first = logger().start()
    first.wait_ready()
    wait_until(lambda: (log_dir / ".notify" / "all.state.json").exists(), what="the rule")
    writer = subprocess.Popen(
        [sys.executable, serverdb.__file__, str(server_db), "--sends", "150", "--interval", "0.02"],
        stdin=subprocess.DEVNULL,
    )
    kills = 0
    proc: LoggerProcess = first
    rng = random.Random(22)
    try:
        for _ in range(5):
            time.sleep(rng.uniform(0.2, 0.8))  # a random moment, not a timing assert
            proc.kill()
            kills += 1
            proc = logger().start()
            proc.wait_ready()
        assert writer.wait(120) == 0
        wait_until(lambda: logged_ids(log_dir) == serverdb.all_ids(server_db), what="logged")
        want = logged_ids(log_dir)
        wait_until(lambda: set(receiver.ids()) >= {f":{i}" for i in want}, what="all delivered")
    finally:
        if writer.poll() is None:
            writer.kill()
        proc.stop()
    got = Counter(receiver.ids())
    assert set(got) == {f":{i}" for i in want}  # nothing lost, nothing made up
    repeated = {key: n for key, n in got.items() if n > 1}
    assert all(n == 2 for n in repeated.values()) and len(repeated) <= kills, repeated
    # A repeat is the event in flight at a kill, sent again first after the restart: the
    # two copies are next to each other, and without them every event came once, in order.
    order = receiver.ids()
    collapsed = [key for i, key in enumerate(order) if i == 0 or order[i - 1] != key]
    assert len(collapsed) == len(set(collapsed)) == len(want)
    ids = [int(key[1:]) for key in collapsed]
    assert ids == sorted(ids)


def test_start_delivers_from_the_daemon_and_stop_ends_it(home_env, server_db, log_dir, receiver):
    config = Path(home_env["HOME"]) / ".config" / "dead-drop-logger" / "config.toml"
    write_config(config, hook("daemon", receiver.url, f'secret = "{SECRET}"'))
    args = ("--db", str(server_db), "--log-dir", str(log_dir), "--poll-interval", "0.05")
    done = run_command("start", *args, env=home_env)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split("(pid ")[1].split(")")[0])
    try:
        wait_until(lambda: (log_dir / ".notify" / "daemon.state.json").exists(), what="the rule")
        # and the follower's start position fixed (a send before it would be history)
        daemon_log = Path(home_env["HOME"]) / ".dead-drop" / "logger.log"
        wait_until(lambda: "INFO: following " in daemon_log.read_text(), what="the follower")
        ids = serverdb.send_many(server_db, 2)
        wait_until(lambda: len(receiver.received()) == len(ids), what="deliveries")
        for request in receiver.received():
            Webhook(SECRET).verify(request.body, request.headers)
        shown = run_command("status", env=home_env).stdout
        assert f"notify daemon (webhook {receiver.url}): matched {len(ids)}, delivered" in shown
    finally:
        stopped = run_command("stop", env=home_env)
        if stopped.returncode != 0:
            os.kill(pid, signal.SIGKILL)
    assert stopped.returncode == 0, stopped.stderr
    assert sorted(receiver.ids()) == [f":{i}" for i in sorted(ids)]


def test_a_room_made_while_it_runs_is_notified_from_its_first_line(
    no_user_config, tmp_path, log_dir, receiver, logger
):
    rooms = tmp_path / "rooms"
    rooms.mkdir()

    def room(name: str) -> Path:
        db = serverdb.room_db(rooms, name)
        db.parent.mkdir()
        serverdb.create(db)
        return db

    ops = room("ops")
    write_config(no_user_config, hook("rooms", receiver.url))
    proc = logger(target=["--rooms-dir", str(rooms), "--log-dir", str(log_dir)]).start()
    wait_until(lambda: "room ops: following " in proc.stderr(), what="room ops")
    wait_until(lambda: (log_dir / ".notify" / "rooms.state.json").exists(), what="the rule")
    serverdb.send(serverdb.connect(ops), "juno", "lead", "in ops")
    wait_until(lambda: receiver.ids() == ["ops:1"], what="the ops message")
    web = room("web")  # made later: found by the follower, then by the rule
    wait_until(lambda: "room web: following " in proc.stderr(), what="room web")
    serverdb.send(serverdb.connect(web), "vega", "lead", "in web")
    wait_until(lambda: len(receiver.ids()) == 2, what="the web message")
    assert proc.stop() == 0
    assert receiver.ids() == ["ops:1", "web:1"]


def test_the_example_settings_file_holds_a_valid_rule(tmp_path):
    from dead_drop_logger.control import configfile

    block = configfile.EXAMPLE.split("# [[notify]]\n", 1)[1]
    text = "[[notify]]\n" + "".join(
        line.removeprefix("# ") + "\n" for line in block.splitlines() if line.startswith("# ")
    )
    path = write_config(tmp_path / "config.toml", text)
    [rule] = configfile.load(path).notify
    assert (rule.name, rule.sink, rule.secret_env) == ("blocked", "webhook", "HOOK_SECRET")
    assert rule.filters.contains == ("blocked",)
