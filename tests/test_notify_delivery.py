"""Each delivery rule of notify, one test each, against a real HTTP receiver on loopback;
the rule's worker is driven round by round with an injected clock (no sleeping, no
timing asserts): retry with backoff, Retry-After/429, 410, dead letter, digest, quiet
hours, the hourly cap, unanswered, task and agent events, and a restart from the saved
state (the kill -9 of the real process is in test_notify_process.py)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeClock
from notifyutil import SECRET, append, message, rule
from receiver import Answer, Receiver
from standardwebhooks.webhooks import Webhook

from dead_drop_logger.notify.service import statuses
from dead_drop_logger.notify.state import notify_dir
from dead_drop_logger.notify.worker import Worker


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def webhook(receiver: Receiver, tmp_path: Path, extra: str = "", match: str = "") -> str:
    text = f"""
[[notify]]
name = "hook"
sink = "webhook"
url = "{receiver.url}"
secret = "{SECRET}"
{extra}
"""
    if match:
        text += f"[notify.match]\n{match}\n"
    return text


def worker(text: str, tmp_path: Path, log_dir: Path, clock: FakeClock) -> Worker:
    append(log_dir, [])  # the day file exists: the rule starts at its end
    found = Worker(rule(text, tmp_path), log_dir, clock=clock, rng=random.Random(1))
    found.step()  # the first round fixes the position at the end of the logs
    return found


def test_delivers_each_match_once_signed_and_verifiable(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    work = worker(
        webhook(receiver, tmp_path, match='contains = "blocked"'), tmp_path, log_dir, clock
    )
    append(log_dir, [message(1), message(2, content="all fine"), message(3, content="blocked too")])
    assert work.step() is None
    got = receiver.received()
    assert [r.headers["webhook-id"] for r in got] == [":1", ":3"]
    verifier = Webhook(SECRET)  # the Standard Webhooks reference implementation
    for request in got:
        assert verifier.verify(request.body, request.headers)["content"].startswith("blocked")
    assert json.loads(got[0].body) == message(1)  # the logged line itself
    work.step()
    assert len(receiver.received()) == 2  # nothing sent twice
    assert work.state.matched == work.state.delivered == 2


def test_retries_with_exponential_backoff(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    work = worker(webhook(receiver, tmp_path), tmp_path, log_dir, clock)
    receiver.plan(Answer(500), Answer(503), Answer(502))
    append(log_dir, [message(1)])
    waits = []
    for _ in range(3):
        wait = work.step()
        assert wait is not None and work.state.pending == 1
        waits.append(wait)
        assert work.step() == pytest.approx(wait)  # not due: nothing sent meanwhile
        clock.advance(seconds=wait)
    assert work.step() is None
    assert receiver.ids() == [":1"] * 4  # the same webhook-id at every attempt
    assert work.state.delivered == 1 and work.state.failing_since is None
    # Exponential with jitter: attempt n waits between half and all of 2**(n-1) seconds.
    assert [0.5 <= waits[0] <= 1, 1 <= waits[1] <= 2, 2 <= waits[2] <= 4] == [True] * 3


def test_failing_since_in_status_then_cleared(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    work = worker(webhook(receiver, tmp_path), tmp_path, log_dir, clock)
    receiver.plan(Answer(500, body=b"database down"))
    append(log_dir, [message(1)])
    wait = work.step()
    [row] = statuses([work.rule], log_dir)
    assert row.pending == 1 and row.failing_since is not None
    assert "database down" in row.to_text() and "failing since" in row.to_text()
    clock.advance(seconds=wait or 0)
    work.step()
    [row] = statuses([work.rule], log_dir)
    assert (row.pending, row.delivered, row.failing_since) == (0, 1, None)


def test_retry_after_and_429_honoured(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    work = worker(webhook(receiver, tmp_path), tmp_path, log_dir, clock)
    receiver.plan(Answer(429, retry_after="120"))
    append(log_dir, [message(1)])
    assert work.step() == pytest.approx(120)
    clock.advance(seconds=119)
    work.step()
    assert len(receiver.received()) == 1  # still waiting as asked
    clock.advance(seconds=1)
    assert work.step() is None
    assert receiver.ids() == [":1", ":1"] and work.state.delivered == 1


def test_410_disables_the_rule_until_its_destination_changes(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    text = webhook(receiver, tmp_path)
    work = worker(text, tmp_path, log_dir, clock)
    receiver.plan(Answer(410, body=b"endpoint removed"))
    append(log_dir, [message(1), message(2)])
    assert work.step() is None
    clock.advance(hours=1)
    work.step()
    assert receiver.ids() == [":1"]  # nothing more sent
    [row] = statuses([work.rule], log_dir)
    assert row.disabled is not None and "410" in row.to_text() and "DISABLED" in row.to_text()
    # Restarted with the same destination: still disabled.
    again = Worker(rule(text, tmp_path), log_dir, clock=clock)
    again.step()
    assert receiver.ids() == [":1"]
    # A new destination: enabled again, and what was pending is delivered.
    other = Receiver()
    try:
        moved = Worker(rule(text.replace(receiver.url, other.url), tmp_path), log_dir, clock=clock)
        assert moved.step() is None
        assert other.ids() == [":1", ":2"]
    finally:
        other.close()


def test_dead_letter_after_the_last_attempt(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    work = worker(webhook(receiver, tmp_path, 'retry_for = "10m"'), tmp_path, log_dir, clock)
    receiver.default = Answer(500, body=b"broken")
    append(log_dir, [message(1)])
    for _ in range(200):
        wait = work.step()
        if work.state.dead:
            break
        assert wait is not None
        clock.advance(seconds=wait)
    assert work.state.dead == 1 and work.state.pending == 0
    assert receiver.received()[-1].at  # attempted until the end
    dead = (notify_dir(log_dir) / "hook.dead.json").read_text().splitlines()
    [letter] = [json.loads(line) for line in dead]
    assert letter["key"] == ":1" and "broken" in letter["error"]
    assert json.loads(letter["body"]) == message(1)
    [row] = statuses([work.rule], log_dir)
    assert row.dead == 1 and "dead letters" in row.to_text()
    # The next event goes through once the receiver is back.
    receiver.default = Answer()
    append(log_dir, [message(2)])
    assert work.step() is None
    assert receiver.ids()[-1] == ":2" and work.state.delivered == 1


def test_digest_sends_one_notification_per_window(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    work = worker(webhook(receiver, tmp_path, 'digest = "5m"'), tmp_path, log_dir, clock)
    append(log_dir, [message(1), message(2)])
    assert work.step() == pytest.approx(300)
    clock.advance(seconds=60)
    append(log_dir, [message(3)])
    work.step()
    assert receiver.received() == []
    clock.advance(seconds=240)
    assert work.step() is None
    [request] = receiver.received()
    assert request.headers["webhook-id"] == "hook:digest:1-3"
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["type"] == "digest" and body["count"] == 3
    assert [e["id"] for e in body["events"]] == [":1", ":2", ":3"]


def test_quiet_hours_hold_then_send_a_digest(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T23:00:00")
    work = worker(
        webhook(receiver, tmp_path, 'quiet_hours = "22:00-07:00"'), tmp_path, log_dir, clock
    )
    append(log_dir, [message(1), message(2)])
    assert work.step() == pytest.approx(8 * 3600)  # until 07:00
    clock.set("2026-12-07T06:59:00")
    work.step()
    assert receiver.received() == []
    clock.set("2026-12-07T07:00:00")
    assert work.step() is None
    [request] = receiver.received()
    assert request.json()["type"] == "digest" and request.json()["count"] == 2
    append(log_dir, [message(3)], day="2026-12-07")
    work.step()  # outside the quiet hours: one at a time again
    assert receiver.ids()[-1] == ":3"


def test_max_per_hour_caps_notifications_and_loses_nothing(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    work = worker(webhook(receiver, tmp_path, "max_per_hour = 2"), tmp_path, log_dir, clock)
    append(log_dir, [message(i) for i in range(1, 6)])
    work.step()
    assert len(receiver.received()) == 2  # the second carries everything else waiting
    append(log_dir, [message(6), message(7)])
    wait = work.step()
    assert len(receiver.received()) == 2 and wait == pytest.approx(3600)
    clock.advance(seconds=3600)
    assert work.step() is None
    got = receiver.received()
    assert len(got) == 4  # two in the first hour, two in the second
    keys = []
    for request in got:
        body = request.json()
        keys += (
            [e["id"] for e in body["events"]]
            if body.get("type") == "digest"
            else [f":{body['id']}"]
        )
    assert keys == [f":{i}" for i in range(1, 8)]  # every event, once, in order


def test_restart_resends_only_what_was_not_delivered(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    text = webhook(receiver, tmp_path)
    work = worker(text, tmp_path, log_dir, clock)
    receiver.plan(Answer(), Answer(500))
    append(log_dir, [message(1), message(2), message(3)])
    work.step()
    assert receiver.ids() == [":1", ":2"]  # 2 failed: pending, in order
    del work  # the process is gone; a new one starts from the saved state
    again = Worker(rule(text, tmp_path), log_dir, clock=clock)
    assert again.state.pending == 2
    again.step()
    assert receiver.ids() == [":1", ":2"]  # the backoff saved is kept
    clock.advance(seconds=1)
    assert again.step() is None
    assert receiver.ids() == [":1", ":2", ":2", ":3"]
    assert again.state.delivered == 3


def test_unanswered_by_the_response_rule(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    text = webhook(receiver, tmp_path, 'unanswered = "30m"', match='to = "lead"')
    work = worker(text, tmp_path, log_dir, clock)
    append(
        log_dir,
        [
            message(1, "juno", "lead", "can I deploy?", timestamp="2026-12-06T10:00:00"),
            message(2, "atlas", "lead", "review please", timestamp="2026-12-06T10:01:00"),
            message(3, "vega", "lead", "fyi", timestamp="2026-12-06T10:02:00"),
            # the lead answers atlas directly, and vega by a reply to a broadcast
            message(4, "lead", "atlas", "looking", timestamp="2026-12-06T10:10:00"),
            message(5, "lead", "all", "ack", timestamp="2026-12-06T10:11:00", reply_to=3),
        ],
    )
    work.step()
    clock.set("2026-12-06T10:29:00")
    work.step()
    assert receiver.received() == []
    del work  # restarted before the time is up: the waiting messages are saved
    again = Worker(rule(text, tmp_path), log_dir, clock=clock)
    clock.set("2026-12-06T10:31:00")
    again.step()
    [request] = receiver.received()
    body = request.json()
    assert request.headers["webhook-id"] == "unanswered::1"
    assert body["type"] == "unanswered" and body["message"]["id"] == 1
    assert body["responder"] == "lead" and body["waited_seconds"] == 31 * 60
    clock.set("2026-12-06T12:00:00")
    again.step()
    assert len(receiver.received()) == 1  # once


def test_task_status_and_agent_health(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    tasks = worker(
        webhook(receiver, tmp_path, 'task_status = ["failed", "review"]'), tmp_path, log_dir, clock
    )
    append(log_dir, [], kind="tasks")
    tasks.step()
    row = {"id": "TASK-1", "title": "deploy", "assigned_to": "juno"}

    def task(name: str, before: str, after: str, at: str, **more: object) -> dict[str, object]:
        return {"task": name, "from": before, "to": after, **more, "at": at, "row": row}

    append(
        log_dir,
        [
            task("TASK-1", "assigned", "in_progress", "2026-12-06T10:01:00"),
            task("TASK-1", "in_progress", "failed", "2026-12-06T10:02:00"),
            task("TASK-2", "in_progress", "completed", "2026-12-06T10:03:00", via=["review"]),
        ],
        kind="tasks",
    )
    tasks.step()
    assert receiver.ids() == [
        "task::TASK-1:failed:2026-12-06T10:02:00",
        "task::TASK-2:completed:2026-12-06T10:03:00",
    ]
    agents_text = webhook(receiver, tmp_path, 'agent_health = ["dead"]').replace(
        '"hook"', '"agents"'
    )
    append(log_dir, [], kind="agents")
    agents = worker(agents_text, tmp_path, log_dir, clock)

    def health(at: str, after: str, before: str) -> dict[str, object]:
        return {"agent": "juno", "event": "health", "at": at, "health": after, "status": None,
                "from": before, "row": {}}  # fmt: skip

    append(
        log_dir,
        [
            health("2026-12-06T10:02:00", "stale", "healthy"),
            health("2026-12-06T10:10:00", "dead", "stale"),
        ],
        kind="agents",
    )
    agents.step()
    assert receiver.ids()[-1] == "agent::juno:dead:2026-12-06T10:10:00"
    assert len(receiver.ids()) == 3


def test_a_new_rule_starts_at_the_end_of_the_logs(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    append(log_dir, [message(1), message(2)])
    work = Worker(rule(webhook(receiver, tmp_path), tmp_path), log_dir, clock=clock)
    work.step()
    assert receiver.received() == []
    append(log_dir, [message(3)])
    work.step()
    assert receiver.ids() == [":3"]


def test_rooms_each_event_keyed_by_its_room_and_the_room_filter(tmp_path, log_dir, receiver):
    clock = FakeClock("2026-12-06T10:00:00")
    for room in ("ops", "web"):
        (log_dir / room).mkdir(parents=True)
        (log_dir / room / ".dead-drop-logger.lock").touch()  # a room a logger writes
        append(log_dir / room, [])
    every = worker(webhook(receiver, tmp_path), tmp_path, log_dir, clock)
    text = webhook(receiver, tmp_path, match='room = "ops"').replace('"hook"', '"ops"')
    ops = worker(text.replace("/hook", "/ops"), tmp_path, log_dir, clock)
    append(log_dir / "ops", [message(1)])
    append(log_dir / "web", [message(1), message(2)])
    append(log_dir, [message(9)])
    every.step()
    ops.step()
    assert sorted(r.headers["webhook-id"] for r in receiver.received() if r.path == "/hook") == [
        ":9",
        "ops:1",
        "web:1",
        "web:2",
    ]
    assert [r.headers["webhook-id"] for r in receiver.received() if r.path == "/ops"] == ["ops:1"]
