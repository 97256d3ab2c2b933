"""The sinks against real receivers on loopback: email through aiosmtpd (STARTTLS and
implicit TLS, with login, the certificate from trustme), a real child process for
``command``, Slack's and ntfy's shapes on the recording HTTP server, and Apprise (the
optional extra) with its throttle off; and that a logger without such a rule never
imports Apprise."""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import FakeClock, logger_command, run_command
from notifyutil import append, message, rule
from receiver import Receiver

from dead_drop_logger.notify.worker import Worker


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"s3cret")
    return AuthResult(success=ok)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


def server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


def drive(text: str, tmp_path: Path, log_dir: Path, rows: list[dict[str, Any]]) -> Worker:
    clock = FakeClock("2026-12-06T10:00:00")
    append(log_dir, [])
    work = Worker(rule(text, tmp_path), log_dir, clock=clock, rng=random.Random(1))
    work.step()
    append(log_dir, rows)
    work.step()
    return work


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_email_over_tls_with_login(tmp_path, log_dir, ca, monkeypatch, scheme):
    authority, pem = ca
    box = Mailbox()
    port = free_port()
    tls = server_context(authority)
    extra: dict[str, Any] = (
        {"tls_context": tls, "require_starttls": True, "auth_require_tls": True}
        if scheme == "smtp+starttls"
        else {"ssl_context": tls, "auth_require_tls": False}  # the whole session is TLS
    )
    smtp = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        **extra,
    )
    smtp.start()
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    try:
        text = f"""
[[notify]]
name = "mail"
sink = "email"
smtp_url = "{scheme}://127.0.0.1:{port}"
smtp_user = "bot"
secret_env = "SMTP_PASSWORD"
ca_file = "{pem}"
from_addr = "logger@example.org"
to_addrs = ["lead@example.org", "ops@example.org"]
[notify.match]
contains = "blocked"
"""
        work = drive(text, tmp_path, log_dir, [message(7, content="blocked on the deploy")])
        assert work.state.delivered == 1, work.last
        [mail] = box.messages
        assert mail.mail_from == "logger@example.org"
        assert mail.rcpt_tos == ["lead@example.org", "ops@example.org"]
        body = mail.content.decode()
        assert (
            "Subject: dead-drop: mail" in body
            and "juno -> lead (#7): blocked on the deploy" in body
        )
        # A wrong password is a failure (retried), not a delivery.
        monkeypatch.setenv("SMTP_PASSWORD", "wrong")
        again = drive(
            text.replace('"mail"', '"mail2"'), tmp_path, log_dir, [message(8, content="blocked")]
        )
        assert again.state.delivered == 0 and again.state.pending == 1
        assert again.last is not None and not again.last.ok
    finally:
        smtp.stop()


def test_command_runs_a_real_child_without_a_shell(tmp_path, log_dir):
    out = tmp_path / "got.ndjson"
    flag = tmp_path / "fail-once"
    flag.touch()
    script = (
        "import json, os, sys\n"
        "event = json.load(sys.stdin)\n"
        "if os.path.exists(sys.argv[2]):\n"
        "    os.unlink(sys.argv[2]); print('not now'); sys.exit(3)\n"
        "open(sys.argv[1], 'a').write(json.dumps(event) + '\\n')\n"
    )
    argv = [sys.executable, "-c", script, str(out), str(flag)]
    text = f"""
[[notify]]
name = "cmd"
sink = "command"
command = {json.dumps(argv)}
"""
    work = drive(text, tmp_path, log_dir, [message(1, content="a; rm -rf / $(x)")])
    assert work.state.pending == 1 and work.last is not None
    assert work.last.detail == "exit 3 not now"  # failed once: retried
    work.clock.advance(seconds=5)  # type: ignore[attr-defined]
    work.step()
    [event] = [json.loads(line) for line in out.read_text().splitlines()]
    assert event == {
        "rule": "cmd",
        "id": ":1",
        "type": "message",
        "data": message(1, content="a; rm -rf / $(x)"),
    }


def test_slack_and_ntfy_shapes(tmp_path, log_dir, receiver):
    text = f"""
[[notify]]
name = "chat"
sink = "slack"
url = "{receiver.url}/slack"

[[notify]]
name = "phone"
sink = "ntfy"
url = "{receiver.url}/topic"
priority = "high"
tags = ["warning", "robot"]
title = "Dead Drop"
"""
    import tomllib

    from dead_drop_logger.notify import rules as notify_rules

    path = tmp_path / "config.toml"
    path.write_text(text)
    chat, phone = notify_rules.parse(tomllib.loads(text)["notify"], text, path)
    clock = FakeClock("2026-12-06T10:00:00")
    append(log_dir, [])
    workers = [Worker(r, log_dir, clock=clock) for r in (chat, phone)]
    for work in workers:
        work.step()
    append(log_dir, [message(4, "juno", "lead", "blocked: the build is red", task_id="TASK-9")])
    for work in workers:
        work.step()
    slack, ntfy = sorted(receiver.received(), key=lambda r: r.path)
    assert slack.path.endswith("/slack")
    assert slack.json() == {
        "text": "dead-drop: chat\njuno -> lead [TASK-9] (#4): blocked: the build is red"
    }
    assert ntfy.body.decode() == "juno -> lead [TASK-9] (#4): blocked: the build is red"
    assert (ntfy.headers["title"], ntfy.headers["priority"], ntfy.headers["tags"]) == (
        "Dead Drop",
        "4",
        "warning,robot",
    )


def test_apprise_sends_without_its_throttle(tmp_path, log_dir, receiver, caplog):
    port = receiver.port
    text = f"""
[[notify]]
name = "many"
sink = "apprise"
urls = ["ntfy://127.0.0.1:{port}/topic"]
"""
    caplog.set_level(logging.DEBUG, logger="apprise")
    work = drive(text, tmp_path, log_dir, [message(1), message(2), message(3)])
    assert work.state.delivered == 3
    got = receiver.received()
    assert [r.json()["message"][:17] for r in got] == [f"juno -> lead (#{i})" for i in (1, 2, 3)]
    assert not [r for r in caplog.records if "Throttling" in r.getMessage()]


def test_without_an_apprise_rule_apprise_is_never_imported(
    no_user_config, server_db, log_dir, receiver
):
    no_user_config.parent.mkdir(parents=True)
    no_user_config.write_text(f'[[notify]]\nname = "a"\nsink = "webhook"\nurl = "{receiver.url}"\n')
    entry = "from dead_drop_logger.control.cli import main; main()"
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(
        [sys.executable, "-c", entry, "notify", "--test", "a"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "dead_drop_logger.notify.sinks" in imported and "apprise" not in imported
    # And no rule at all: run --help loads nothing of notify.
    no_user_config.unlink()
    done = subprocess.run(
        [sys.executable, "-c", entry, "run", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert done.returncode == 0 and "click" in imported
    assert not [n for n in imported if n.startswith("dead_drop_logger.notify") or n == "apprise"]
    assert run_command("--help", env=dict(os.environ)).returncode == 0
    assert logger_command()


def test_email_never_sends_a_password_in_clear(tmp_path, log_dir, monkeypatch):
    box = Mailbox()
    port = free_port()
    smtp = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )  # no TLS at all, and it would take a login
    smtp.start()
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    try:
        text = f"""
[[notify]]
name = "plain"
sink = "email"
smtp_url = "smtp://127.0.0.1:{port}"
smtp_user = "bot"
secret_env = "SMTP_PASSWORD"
from_addr = "logger@example.org"
to_addrs = ["lead@example.org"]
"""
        work = drive(text, tmp_path, log_dir, [message(1)])
        assert work.state.delivered == 0 and box.messages == []
        assert work.last is not None and "offers no STARTTLS" in work.last.detail
    finally:
        smtp.stop()
