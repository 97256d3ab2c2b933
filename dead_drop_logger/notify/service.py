"""The notifier: every rule's worker in a thread of its own, and what ``status`` shows.

Why it looks like this: ``run``/``start`` start it beside the follower when the settings
file has rules (it only reads the committed logs, so it cannot slow or change what is
logged), and ``dead-drop-logger notify`` runs it alone. Its threads are daemon threads:
a receiver that stalls must not keep the logger from exiting; whatever was in flight is
sent again at the next start (at least once).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..crypt import agentkeys
from ..files import LogDirError
from .events import Event
from .lines import DirWatch
from .rules import Rule, matches_content
from .sinks import Notification, Outcome, send
from .state import RuleLock, RuleState, notify_dir, saved_states
from .worker import Worker

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.05  # how often the notifier looks at the log directory for new lines
JOIN_TIMEOUT = 2.0
LOCK_RETRY = 2.0  # seconds between two tries of a rule another process runs


class Notifier:
    """Runs the rules until :meth:`stop`."""

    def __init__(
        self,
        rules: Sequence[Rule],
        log_dir: Path,
        *,
        clock: Clock | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.rules = list(rules)
        self.log_dir = log_dir
        self.clock = clock
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.wakes: list[threading.Event] = []

    def start(self) -> None:
        """One thread per rule. A rule that cannot start (its secret missing, its state
        unreadable) is logged and the others run."""
        for rule in self.rules:
            wake = threading.Event()
            self.wakes.append(wake)
            thread = threading.Thread(
                target=self._run, args=(rule, wake), name=f"notify-{rule.name}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        watcher = threading.Thread(target=self._watch, name="notify-watch", daemon=True)
        watcher.start()
        self.threads.append(watcher)
        named = ", ".join(f"{r.name} ({r.sink} {r.destination})" for r in self.rules)
        log.info("notifying: %s", named)
        content = [r.name for r in self.rules if matches_content(r)]
        if content and agentkeys.content_sealed(self.log_dir):
            log.info(
                "notify %s: contents here are sealed per agent: matched only where the"
                " identity opens them (as search --contains)",
                ", ".join(content),
            )

    def _watch(self) -> None:
        """One look at the log directory every ``poll_interval`` for all the rules: each
        rule's thread is woken when it changed (and sleeps otherwise)."""
        watch = DirWatch(self.log_dir)
        last = watch.signature()
        while not self.stopping.wait(self.poll_interval):
            now = watch.signature()
            if now is None or now != last:
                for wake in self.wakes:
                    wake.set()
            last = now

    def _run(self, rule: Rule, wake: threading.Event) -> None:
        """A rule's thread: its lock (another process may run it: then waited for), its
        worker, its rounds until stopped."""
        lock = RuleLock(self.log_dir, rule.name)
        told = False
        try:
            while not lock.acquire():
                if not told:
                    log.warning(
                        "notify %s: run by another process (pid %s); waiting for it to stop",
                        rule.name,
                        lock.holder(),
                    )
                    told = True
                if self.stopping.wait(LOCK_RETRY):
                    return
        except (OSError, LogDirError) as exc:
            log.error("notify %s: cannot start: %s", rule.name, exc)
            return
        try:
            worker = Worker(rule, self.log_dir, clock=self.clock)
            worker.run(self.stopping, self.poll_interval, wake)
        except Exception as exc:
            log.error("notify %s: cannot start: %s", rule.name, exc)
        finally:
            lock.release()

    def stop(self) -> None:
        self.stopping.set()
        for wake in self.wakes:
            wake.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)


def sample(rule: Rule) -> Event:
    """The event ``notify --test`` sends: a made-up message (or task, or agent line)."""
    now = dt.datetime.now().replace(microsecond=0).isoformat()
    import json

    if rule.kind == "task":
        body: dict[str, Any] = {
            "task": "TASK-TEST",
            "from": "in_progress",
            "to": rule.task_status[0],
            "at": now,
            "row": {"id": "TASK-TEST", "title": "a test from dead-drop-logger notify --test"},
        }
    elif rule.kind == "agent":
        body = {
            "agent": "test-agent",
            "event": "health",
            "at": now,
            "health": rule.agent_health[0],
            "status": None,
            "from": "healthy",
            "row": {"name": "test-agent"},
        }
    else:
        body = {
            "id": 0,
            "from_agent": "dead-drop-logger",
            "to_agent": "you",
            "content": f"a test of notify rule {rule.name!r}",
            "timestamp": now,
            "read_flag": 0,
            "is_cc": 0,
            "cc_original_to": None,
            "task_id": None,
            "reply_to": None,
        }
        if rule.kind == "unanswered":
            body = {
                "type": "unanswered",
                "waited_seconds": int(rule.unanswered or 0),
                "responder": "you",
                "message": body,
            }
    kind = "message" if rule.kind == "message" else rule.kind
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    key = f"test:{rule.name}:{int(dt.datetime.now().timestamp())}"
    return Event(key, kind, None, text, dt.datetime.now().timestamp())


def test(rule: Rule) -> Outcome:
    """Send a sample event through a rule now (no state, no retry)."""
    event = sample(rule)
    return send(rule, Notification(rule.name, [event], event.key, False), rule.secret_value())


@dataclass(frozen=True)
class RuleStatus:
    """What ``status`` says of a rule."""

    name: str
    sink: str
    destination: str
    matched: int
    delivered: int
    pending: int
    dead: int
    failing_since: float | None
    last_error: str | None
    disabled: str | None
    dead_letters: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def to_text(self) -> str:
        line = (
            f"notify {self.name} ({self.sink} {self.destination}): matched {self.matched},"
            f" delivered {self.delivered}, pending {self.pending}"
        )
        if self.dead:
            line += f", {self.dead} dead letters in {self.dead_letters}"
        if self.disabled:
            line += f"; DISABLED: {self.disabled}"
        elif self.failing_since is not None:
            since = dt.datetime.fromtimestamp(self.failing_since).isoformat(timespec="seconds")
            line += f"; failing since {since}: {self.last_error}"
        return line


def statuses(rules: Sequence[Rule], log_dir: Path) -> list[RuleStatus]:
    """Each rule's figures from its saved state (a rule never run: zeros)."""
    saved = saved_states(log_dir)
    out = []
    for rule in rules:
        state = saved.get(rule.name) or RuleState()
        dead_path = notify_dir(log_dir) / f"{rule.name}.dead.json"
        out.append(
            RuleStatus(
                rule.name,
                rule.sink,
                rule.destination,
                state.matched,
                state.delivered,
                state.pending,
                state.dead,
                state.failing_since,
                state.last_error,
                None if state.disabled is None else str(state.disabled.get("reason")),
                str(dead_path) if state.dead else None,
            )
        )
    return out
