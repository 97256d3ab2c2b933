"""serve's plain functions, without a socket: event ids, resuming, a client's filters,
the query reader, keyset pages, the page's Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from dead_drop_logger.logdir.layout import LOCK_FILE
from dead_drop_logger.read.feed import Feed
from dead_drop_logger.serve import api, page
from dead_drop_logger.serve.events import (
    Subscriber,
    format_id,
    parse_id,
    resume,
    vector_at,
)
from dead_drop_logger.serve.query import BadRequest, box_pairs, message_query


def line(ident: int, day: str, sender: str = "juno", content: str = "hello") -> str:
    return json.dumps(
        {"id": ident, "from_agent": sender, "to_agent": "vega", "content": content,
         "timestamp": f"{day}T10:00:{ident % 60:02d}", "read_flag": 0, "is_cc": 0,
         "cc_original_to": None, "task_id": None, "reply_to": None},
        separators=(",", ":"),
    ) + "\n"  # fmt: skip


def write_day(log_dir: Path, day: str, ids: range, **kw: str) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / LOCK_FILE).touch()  # a room's directory is one a logger has written to
    with open(log_dir / f"messages-{day}.json", "a", encoding="utf-8") as out:
        out.write("".join(line(i, day, **kw) for i in ids))


def ids_of(feed: Feed) -> list[tuple[str | None, int | None]]:
    return [(fl.room, fl.id) for fl in feed.poll()]


@pytest.mark.parametrize("room", ["ops", "a,b", "x:y", "sp ace", "100%", "ünï"])
def test_event_ids_round_trip_any_room_name(room: str) -> None:
    vector = {room: 12, None: 3, "dev": 7}
    text = format_id(vector, room)
    assert "\n" not in text and "\r" not in text
    assert parse_id(text) == vector
    assert text.split(",")[0].endswith(":12")  # the event's own key first
    assert format_id({None: 5}, None) == ":5"
    assert format_id({"ops": 5}, "ops") == "ops:5"  # one room: just ROOM:ID


@pytest.mark.parametrize("bad", ["", "12", "ops:", "ops:x", "ops:1,dev", "../etc:1", "x" * 5000])
def test_bad_last_event_ids_are_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_id(bad)


def test_resume_starts_after_the_line_whatever_file_it_is_in(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_day(logs, "2026-02-01", range(1, 6))
    write_day(logs, "2026-02-02", range(6, 11))
    write_day(logs / "ops", "2026-02-02", range(1, 4))
    # the line is in the older file: the rest of it, then the newer file from its start
    done = resume(logs, {None: 3, "ops": 2})
    assert done.above == {}
    assert ids_of(Feed(logs, done.position)) == [
        (None, 4), (None, 5), (None, 6), (None, 7), (None, 8), (None, 9), (None, 10), ("ops", 3),
    ]  # fmt: skip
    # a room the id does not name (made since) is read from its first line
    assert ids_of(Feed(logs, resume(logs, {None: 10}).position)) == [
        ("ops", 1), ("ops", 2), ("ops", 3),
    ]  # fmt: skip
    # a line no longer there (retention): every greater id, through the client's floor
    gone = resume(logs, {None: 0, "ops": 3})
    assert gone.above == {None: 0}
    client = Subscriber(message_query([]).filters)
    client.vector, client.above = {None: 0, "ops": 3}, dict(gone.above)
    sent = client.events(Feed(logs, gone.position).poll(), live=False).decode()
    assert re.findall(r"^data: \{\"id\":(\d+)", sent, re.M) == [str(i) for i in range(1, 11)]
    # and nothing new: nothing at all
    assert ids_of(Feed(logs, resume(logs, {None: 10, "ops": 3}).position)) == []


def test_a_client_sees_its_matches_and_its_position_moves_past_the_rest(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_day(logs, "2026-02-01", range(1, 4), sender="vega")
    write_day(logs, "2026-02-01", range(4, 5), sender="juno")
    feed = Feed(logs)
    lines = list(feed.poll())
    client = Subscriber(message_query([("from", "juno")], paged=False).filters)
    client.vector = {None: 0}
    first = client.events(lines[:3]).decode()
    assert first == "event: position\nid: :3\ndata: {}\n\n"  # no match, but it moved
    second = client.events(lines[3:]).decode()
    assert second.startswith('id: :4\ndata: {"id":4,') and second.count("\n\n") == 1
    # a line the catch-up already sent (same file, before its end) is dropped
    again = Subscriber(message_query([]).filters, caught_up={(None, lines[0].file.day, 0): 10**6})
    assert again.events(lines) == b""
    assert vector_at(feed.position, logs) == {None: 4}


def test_the_filter_box_is_the_search_command_line() -> None:
    assert box_pairs("--from juno -i 'deploy merge' --task=T-1 more") == [
        ("from", "juno"), ("ignore_case", "1"), ("contains", "deploy merge"),
        ("task", "T-1"), ("contains", "more"),
    ]  # fmt: skip
    for bad in ("--from", "--frm x", "'unclosed"):
        with pytest.raises(BadRequest):
            box_pairs(bad)
    query = message_query([("q", "--from juno"), ("to", "vega")])
    assert query.filters.senders == ("juno",) and query.filters.recipients == ("vega",)
    assert query.order == "newest" and query.limit == 100  # a JSON page
    assert message_query([], ndjson=True).order == "oldest"  # NDJSON: as search
    assert message_query([], ndjson=True).limit is None  # no cap
    with pytest.raises(BadRequest):
        message_query([("task", "a"), ("task", "b")])
    with pytest.raises(BadRequest):
        message_query([("no_cc", "maybe")])


def test_keyset_pages_walk_every_message_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_day(logs, "2026-02-01", range(1, 8))
    write_day(logs / "ops", "2026-02-01", range(1, 5))
    source = api.Logs(logs)
    seen: list[str] = []
    pairs: list[tuple[str, str]] = [("limit", "3")]
    for _ in range(10):
        body = api.page(source, message_query(pairs), pairs)
        data = json.loads(body)
        seen += data["keys"]
        if data["next"] is None:
            break
        pairs = [(k, v[0]) for k, v in _query(data["next"]).items()]
    assert len(seen) == 11 and len(set(seen)) == 11
    assert set(seen) == {f":{i}" for i in range(1, 8)} | {f"ops:{i}" for i in range(1, 5)}
    with pytest.raises(BadRequest):
        api.page(source, message_query([("cursor", "ops:99")]), [("cursor", "ops:99")])


def _query(link: str) -> dict[str, list[str]]:
    import urllib.parse

    return urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)


def test_the_page_allows_exactly_its_own_script_and_style() -> None:
    html = page.html().decode()
    policy = page.headers()["Content-Security-Policy"]
    for tag in ("script", "style"):
        inline = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        assert inline is not None
        digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere


@pytest.mark.parametrize("block", [7, 64, 1 << 16])
def test_reading_from_the_end_is_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    from dead_drop_logger.read import search as search_module
    from dead_drop_logger.read.logread import Reader
    from dead_drop_logger.read.search import Filters, Search

    monkeypatch.setattr(search_module, "BACK_BLOCK", block)
    logs = tmp_path / "logs"
    write_day(logs, "2026-02-01", range(1, 40))
    write_day(logs, "2026-02-02", range(40, 45), content="x" * 300)  # lines over a block
    with open(logs / "messages-2026-02-02.json", "a") as out:
        out.write("not json\n" + line(45, "2026-02-02") + '{"id":46,"partial')

    def entries(method: str, limit: int | None) -> list[tuple[int, bytes]]:
        found = getattr(Search(Reader.of(logs), Filters()), method)(limit)
        return [(e.line.offset, e.line.raw) for e in found]

    for limit in (None, 0, 1, 3, 7, 100):
        assert entries("from_the_end", limit) == entries("newest_first", limit), limit
    assert entries("from_the_end", 1)[0][1] == line(45, "2026-02-02").encode()


def test_a_client_too_slow_is_dropped_and_its_stream_ended(tmp_path: Path) -> None:
    from dead_drop_logger.serve.events import Hub

    logs = tmp_path / "logs"
    write_day(logs, "2026-02-01", range(1, 3))
    hub = Hub(logs)
    ended: list[str] = []
    slow = Subscriber(message_query([]).filters, send=lambda data: False)
    slow.close = lambda: ended.append("slow")
    fine: list[bytes] = []
    ok = Subscriber(message_query([]).filters, send=lambda data: fine.append(data) or True)
    ok.close = lambda: ended.append("ok")
    hub.subscribe(slow, None)
    hub.subscribe(ok, None)
    write_day(logs, "2026-02-01", range(3, 5))
    assert hub.poll() == 2
    assert ended == ["slow"] and hub.subscribers == [ok]
    assert b'"id":3' in fine[0] and b'"id":4' in fine[0]
