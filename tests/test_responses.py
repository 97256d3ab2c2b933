"""Response times: the definition (docs/stats.md, --help) on its worked example and its edges,
and the bound on the state kept while streaming."""

from __future__ import annotations

from collections import Counter

from dead_drop_logger.read.responses import DAY_SECONDS, ResponseTracker, median, p90

MIN = 60.0


def answers(tracker: ResponseTracker) -> dict[str, tuple[int, float, float]]:
    return {r.responder: (r.count, r.median, r.p90) for r in tracker.results()}


def test_the_worked_example_of_the_help() -> None:
    # A->B 10:00 (#1), A->B 10:05 (#2), B->C 10:07 replying to #1, B->A 10:20.
    t = ResponseTracker()
    t.add(1, "A", "B", 600 * MIN, None)
    t.add(2, "A", "B", 605 * MIN, None)
    t.add(3, "B", "C", 607 * MIN, 1)
    t.add(4, "B", "A", 620 * MIN, None)
    assert list(t.distribution("B")) == [(7 * 60, 1), (15 * 60, 1)]
    assert answers(t) == {"B": (2, 11 * MIN, 15 * MIN)}


def test_a_broadcast_reply_answers_but_a_broadcast_alone_does_not() -> None:
    t = ResponseTracker()
    t.add(1, "A", "B", 0, None)
    t.add(2, "B", "all", 60, None)  # not to A, not a reply: no answer
    t.add(3, "A", "B", 100, None)
    t.add(4, "B", "all", 160, 3)  # a reply to #3
    assert list(t.distribution("B")) == [(60, 1)]
    assert t.pending == 1  # #1 still waits


def test_only_the_recipient_answers() -> None:
    t = ResponseTracker()
    t.add(1, "A", "B", 0, None)
    t.add(2, "C", "A", 10, 1)  # C replying to A's message to B
    t.add(3, "A", "B", 20, None)  # A again: not an answer to itself
    assert answers(t) == {}
    t.add(4, "B", "A", 50, None)
    assert list(t.distribution("B")) == [(30, 1), (50, 1)]


def test_an_answer_after_24_hours_does_not_count() -> None:
    t = ResponseTracker()
    t.add(1, "A", "B", 0, None)
    t.add(2, "A", "B", 10, None)
    t.add(3, "B", "A", DAY_SECONDS + 5, None)  # 24h exactly after #2 counts, #1 does not
    assert list(t.distribution("B")) == [(DAY_SECONDS - 5, 1)]
    t.add(4, "A", "B", 0, None)
    t.add(5, "B", "A", DAY_SECONDS, 4)
    assert list(t.distribution("B")) == [(DAY_SECONDS - 5, 1), (DAY_SECONDS, 1)]


def test_self_messages_and_unknown_ids_wait_for_nobody() -> None:
    t = ResponseTracker()
    t.add(1, "A", "A", 0, None)
    t.add(None, "A", "B", 0, None)  # no id: it can still be answered by B's next message
    assert t.pending == 0
    t.add(2, "B", "A", 30, 12345)
    assert answers(t) == {}


def test_pending_state_is_bounded_by_the_24h_window() -> None:
    t = ResponseTracker()
    per_day = 1000
    for i in range(10 * per_day):  # ten days, never answered
        t.add(i, "A", "B", i * DAY_SECONDS / per_day, None)
        assert t.pending <= per_day + 1
    assert t.evicted == 0


def test_pending_state_is_capped_oldest_first() -> None:
    t = ResponseTracker(max_pending=3)
    for i in range(5):
        t.add(i, "A", "B", i, None)
    assert (t.pending, t.evicted) == (3, 2)
    t.add(9, "B", "A", 10, None)
    assert list(t.distribution("B")) == [(8, 1), (7, 1), (6, 1)][::-1]


def test_median_and_p90_by_nearest_rank() -> None:
    assert median(Counter({10: 1})) == 10
    assert median(Counter({10: 1, 20: 1})) == 15
    assert median(Counter({10: 2, 20: 1})) == 10
    values = Counter({v: 1 for v in range(1, 11)})  # 1..10
    assert (median(values), p90(values)) == (5.5, 9)
    assert p90(Counter({1: 9, 100: 1})) == 1
    assert p90(Counter({1: 8, 100: 2})) == 100
