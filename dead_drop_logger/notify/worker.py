"""One rule at work: read what is new, match it, deliver it, in its own thread.

Why one thread per rule: a slow or dead endpoint then holds up only its own rule; the
logger's follower (another thread) and the other rules never wait for it. Each rule
reads the committed log lines itself, never the database.

The decisions that depend on time (when to retry, a digest's window, quiet hours, the
hourly cap, when a message counts as unanswered) take the time from an injectable
clock, and :meth:`Worker.step` does one round of work, so tests drive a rule round by
round with a clock they move.

Retries: exponential backoff from 1 s doubling up to ``backoff_max`` (5 min), each wait
drawn between half and all of it (jitter, so many rules do not retry in step); a
``Retry-After`` the receiver sends (429, 503) is waited instead. An event whose last
attempt fails ``retry_for`` (24 h) after it was matched goes to the dead letters. A 410
disables the rule until its destination changes.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..clock import Clock, SystemClock
from ..logdir import layout
from . import events as ev
from .events import Event
from .lines import Item, Lines
from .rules import Rule
from .sinks import Notification, Outcome, send
from .state import RuleState, Store

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0
MAX_BATCH = 1000  # events in one digest
HOUR = 3600.0
IDLE_TICK = 1.0  # seconds between two rounds with nothing changed nor due
EPSILON = 0.001  # a wait this short is due now (float time)

Sender = Callable[[Rule, Notification, str | None], Outcome]


class Worker:
    """One rule: its reader, its state, its deliveries."""

    def __init__(
        self,
        rule: Rule,
        log_dir: Path,
        *,
        clock: Clock | None = None,
        sender: Sender = send,
        rng: random.Random | None = None,
    ) -> None:
        self.rule = rule
        self.clock = clock or SystemClock()
        self.sender = sender
        self.rng = rng or random.Random()
        self.secret = rule.secret_value()
        self.store = Store(log_dir, rule.name)
        saved = self.store.load()
        self.state = saved or RuleState()
        kind = {"task": layout.TASKS, "agent": layout.AGENTS}.get(rule.kind, layout.MESSAGES)
        self.lines = Lines(log_dir, kind, rule.rooms, self.state.positions.get(kind))
        self.kind = kind
        # A first read fixes the rule's position (at the end of the logs): saved at once.
        self.fresh = kind not in self.state.positions
        self.unanswered = (
            ev.Unanswered(rule, self.state.waiting) if rule.unanswered is not None else None
        )
        if self.state.disabled and self.state.disabled.get("destination") != rule.destination:
            log.info("notify %s: its destination changed; enabled again", rule.name)
            self.state.disabled = None
        self.state.destination = rule.destination
        self.last: Outcome | None = None

    def now(self) -> float:
        return self.clock.now().timestamp()

    # -- reading -------------------------------------------------------------------

    def read(self) -> int:
        """Match what is new; journal the events, then save the position. Returns how
        many events were matched."""
        now = self.now()
        items = list(self.lines.poll())
        found: list[Event] = list(self._match(items, now))
        if self.unanswered is not None:
            found += self.unanswered.due(self.clock.now(), now)
        if not items and not found and not self.fresh:
            return 0
        self.fresh = False
        numbered = [(self.state.next_seq + i, event) for i, event in enumerate(found)]
        self.store.append(numbered)
        self.state.next_seq += len(found)
        self.state.matched += len(found)
        self.state.positions[self.kind] = self.lines.position
        if self.unanswered is not None:
            self.state.waiting = self.unanswered.saved()
        self.store.save(self.state)
        return len(found)

    def _match(self, items: list[Item], now: float) -> Iterator[Event]:
        kind = self.rule.kind
        if kind == "message":
            return ev.messages(self.rule, items, now)
        if kind == "task":
            return ev.tasks(self.rule, items, now)
        if kind == "agent":
            return ev.agents(self.rule, items, now)
        assert self.unanswered is not None
        self.unanswered.feed(items)
        return iter(())

    # -- delivering ----------------------------------------------------------------

    def deliver(self) -> float | None:
        """Send what is due. Returns the seconds until something is due again (None:
        nothing pending, or the rule is disabled)."""
        state = self.state
        while True:
            if state.disabled is not None or not self.store.events:
                return None
            now = self.clock.now()
            moment = now.timestamp()
            if state.next_at is not None and moment + EPSILON < state.next_at:
                return state.next_at - moment
            batch = self._batch(moment)
            if isinstance(batch, float):
                return batch
            first, last, digest = batch
            chosen = [(s, e) for s, e in self.store.events if first <= s <= last]
            if not chosen:  # cannot happen (the batch is of pending events); be safe
                state.batch = None
                continue
            key = chosen[0][1].key if not digest else f"{self.rule.name}:digest:{first}-{last}"
            note = Notification(self.rule.name, [e for _s, e in chosen], key, digest)
            outcome = self.sender(self.rule, note, self.secret)
            self.last = outcome
            if outcome.ok:
                self._delivered(chosen, last, moment)
                continue
            if outcome.gone:
                state.disabled = {
                    "reason": f"410 Gone: {outcome.detail}",
                    "at": moment,
                    "destination": self.rule.destination,
                }
                state.last_error = outcome.detail
                log.error(
                    "notify %s: %s answered 410 Gone: rule disabled",
                    self.rule.name,
                    self.rule.destination,
                )
                self.store.save(state)
                return None
            if not self._failed(chosen, last, outcome, moment):
                return state.next_at - moment if state.next_at is not None else None

    def _batch(self, moment: float) -> tuple[int, int, bool] | float:
        """The events the next attempt sends (first seq, last seq, as a digest), or the
        seconds to wait before any is due."""
        state, rule = self.state, self.rule
        now = self.clock.now()
        if rule.in_quiet_hours(now):
            return max(0.001, rule.quiet_end(now).timestamp() - moment)
        if state.batch is not None:
            return int(state.batch["first"]), int(state.batch["last"]), bool(state.batch["digest"])
        if rule.max_per_hour is not None:
            recent = [t for t in state.sent_times if moment - t < HOUR]
            state.sent_times = recent
            if len(recent) >= rule.max_per_hour:
                return max(0.001, recent[0] + HOUR - moment)
        pending = list(self.store.events)
        head_seq, head = pending[0]
        digest = False
        last = head_seq
        if rule.digest is not None:
            if moment + EPSILON < head.at + rule.digest:
                return head.at + rule.digest - moment
            chosen = [s for s, e in pending if e.at < head.at + rule.digest]
            last, digest = chosen[:MAX_BATCH][-1], True
        elif rule.quiet_hours is not None and rule.in_quiet_hours(_local(self.clock, head.at)):
            held = [s for s, e in pending if rule.in_quiet_hours(_local(self.clock, e.at))]
            last, digest = _consecutive(held)[:MAX_BATCH][-1], True
        elif (
            rule.max_per_hour is not None
            and len(state.sent_times) == rule.max_per_hour - 1
            and len(pending) > 1
        ):  # the hour's last notification carries everything waiting
            last, digest = pending[:MAX_BATCH][-1][0], True
        if digest:
            state.batch = {"first": head_seq, "last": last, "digest": True}
            self.store.save(state)  # a restart sends the same batch under the same id
        return head_seq, last, digest

    def _delivered(self, chosen: list[tuple[int, Event]], last: int, moment: float) -> None:
        state = self.state
        state.done = last
        state.delivered += len(chosen)
        state.sent += 1
        state.batch = None
        state.attempts = 0
        state.failing_since = None
        state.next_at = None
        state.last_error = None
        if self.rule.max_per_hour is not None:
            state.sent_times = [*state.sent_times, moment][-self.rule.max_per_hour :]
        self.store.save(state)
        self.store.done_upto(state, last)

    def _failed(
        self, chosen: list[tuple[int, Event]], last: int, outcome: Outcome, moment: float
    ) -> bool:
        """Record a failed attempt; True when the events went to the dead letters (so
        the next ones are due at once)."""
        state, rule = self.state, self.rule
        state.attempts += 1
        state.last_error = outcome.detail
        if state.failing_since is None:
            state.failing_since = moment
        oldest = min(e.at for _s, e in chosen)
        if moment - oldest >= rule.retry_for:
            self.store.dead_letter(chosen, rule.name, outcome.detail)
            log.error(
                "notify %s: %d event(s) undelivered after %d attempts over %.0fs: dead letter (%s)",
                rule.name,
                len(chosen),
                state.attempts,
                moment - oldest,
                outcome.detail,
            )
            state.dead += len(chosen)
            state.done = last
            state.batch = None
            state.attempts = 0
            state.next_at = None
            self.store.save(state)
            self.store.done_upto(state, last)
            return True
        if outcome.retry_after is not None:
            wait = min(outcome.retry_after, rule.retry_for)
        else:
            ceiling = min(rule.backoff_max, BACKOFF_BASE * 2 ** min(state.attempts - 1, 30))
            wait = ceiling * (0.5 + 0.5 * self.rng.random())
        state.next_at = moment + wait
        if state.attempts == 1 or state.attempts % 10 == 0:
            log.warning(
                "notify %s: attempt %d failed (%s); next in %.1fs",
                rule.name,
                state.attempts,
                outcome.detail,
                wait,
            )
        self.store.save(state)
        return False

    # -- running -------------------------------------------------------------------

    def step(self) -> float | None:
        """One round: read, then deliver. Returns the seconds until a delivery is due."""
        self.read()
        return self.deliver()

    def run(
        self, stop: threading.Event, poll_interval: float, wake: threading.Event | None = None
    ) -> None:
        """Rounds until ``stop`` is set; an unexpected error is logged and retried.

        With ``wake`` (set by the notifier's :class:`.lines.DirWatch` when the logs
        change, and at stop), a round comes when it is set, when a delivery is due, or
        each second (an unanswered message's time); without, every ``poll_interval``."""
        while not stop.is_set():
            if wake is not None:
                wake.clear()  # (set during the round: the next wait returns at once)
            try:
                due = self.step()
            except Exception:
                log.exception("notify %s: unexpected error; trying again", self.rule.name)
                due = None
            tick = poll_interval if wake is None else IDLE_TICK
            wait = tick if due is None else max(0.0, min(due, tick))
            if not wait:
                continue
            if wake is None:
                stop.wait(wait)
            else:
                wake.wait(wait)


def _local(clock: Clock, moment: float) -> dt.datetime:
    zone = clock.now().tzinfo
    return dt.datetime.fromtimestamp(moment, zone)


def _consecutive(seqs: list[int]) -> list[int]:
    """The leading run of consecutive sequence numbers."""
    run = seqs[:1]
    for seq in seqs[1:]:
        if seq != run[-1] + 1:
            break
        run.append(seq)
    return run
