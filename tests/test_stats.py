"""``stats``: every number against a small log directory worked out by hand.

The directory is written by the real logger (``--import-historical``) from a
server-faithful database (CC rows for the lead, one transaction per send) with fixed
timestamps over three days, so every figure below is computed here, in comments, from
the eleven sends, not by the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import serverdb
from click.testing import CliRunner
from conftest import log_with_real_logger

from dead_drop_logger.control.cli import cli

# The team: juno, atlas, vega and the lead. Each send to or from someone other than
# the lead gets a CC row for the lead (is_cc = 1), with the next id.
#    send  time (2026-02-..)  from   to     task  reply_to  ids (message, CC)
SENDS = [
    ("S1", "19T23:50:00", "juno", "atlas", "T-1", None, "plan for the deploy"),  # 1, 2
    ("S2", "19T23:55:00", "juno", "atlas", "T-1", None, "and the tests"),  # 3, 4
    ("S3", "20T00:10:00", "atlas", "juno", "T-1", "S1", "on it"),  # 5, 6
    ("S4", "20T00:20:00", "lead", "all", None, None, "standup at 9"),  # 7
    ("S5", "20T09:00:00", "vega", "lead", None, None, "status?"),  # 8
    ("S6", "20T09:30:00", "lead", "vega", None, "S5", "green"),  # 9
    ("S7", "20T10:00:00", "atlas", "all", "T-1", "S3", "deployed"),  # 10, 11
    ("S8", "20T10:05:00", "juno", "atlas", "T-1", "S7", "thanks"),  # 12, 13
    ("S9", "21T11:00:00", "atlas", "juno", "T-2", None, "done?"),  # 14, 15
    ("S10", "21T11:30:00", "vega", "atlas", "T-2", None, "help with T-2"),  # 16, 17
    ("S11", "21T11:40:00", "vega", "atlas", None, None, "ping"),  # 18, 19
]
EXPECTED_IDS = {
    "S1": [1, 2], "S2": [3, 4], "S3": [5, 6], "S4": [7], "S5": [8], "S6": [9],
    "S7": [10, 11], "S8": [12, 13], "S9": [14, 15], "S10": [16, 17], "S11": [18, 19],
}  # fmt: skip


@pytest.fixture(scope="module")
def team_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("team")
    db, log_dir = root / "messages.db", root / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    ids: dict[str, list[int]] = {}
    for name, when, sender, to, task, reply, text in SENDS:
        ids[name] = serverdb.send(
            conn, sender, to, text, timestamp=f"2026-02-{when}", task_id=task,
            reply_to=None if reply is None else ids[reply][0],
        )  # fmt: skip
    conn.close()
    assert ids == EXPECTED_IDS
    log_with_real_logger(db, log_dir)
    return log_dir


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


# Worked out from SENDS:
# - messages: 11 sends; CC copies: the 8 sends not from or to the lead (S1-S3, S7-S11).
# - broadcasts: S4, S7; direct: the other 9.
# - agents: juno, atlas, vega, lead. days: 19th (2), 20th (6), 21st (3).
# - per agent (sent / received direct / broadcasts / CC / busiest hour of its sends):
#   atlas 3 (S3,S7,S9) / 5 (S1,S2,S8,S10,S11) / 1 / 0 / hours 0,10,11 tie -> 00
#   juno  3 (S1,S2,S8) / 2 (S3,S9) / 0 / 0 / hours 23,23,10 -> 23
#   vega  3 (S5,S10,S11) / 1 (S6) / 0 / 0 / hours 9,11,11 -> 11
#   lead  2 (S4,S6) / 1 (S5) / 1 / 8 / hours 0,9 -> 00
#   first/last seen: its first and last line sent or received, CC copies included
#   (so the lead, copied on S1 and S11, spans the whole log), broadcasts received aside.
# - pairs: juno->atlas 3; atlas->juno 2; vega->atlas 2; lead->vega 1; vega->lead 1.
# - response times:
#   atlas: S3 (00:10) replies to S1 (23:50 the day before): 20m, and is atlas's next
#     message to juno after S2 (23:55): 15m -> 2 answers, median 17m 30s, p90 20m.
#     S9 (21st 11:00) comes 24h55m after S8 (20th 10:05): too late, not counted.
#   juno: S8 (10:05) is juno's next message to atlas after S3 (00:10): 9h 55m.
#   lead: S6 replies to S5 (and is the lead's next message to vega): 30m.
#   S7 is a broadcast reply to S3, but S3 was atlas's own message: no answer.
# - tasks: T-1 = S1,S2,S3,S7,S8 (5; atlas, juno; 19th 23:50 to 20th 10:05: 10h 15m);
#   T-2 = S9,S10 (2; atlas, juno, vega; 11:00 to 11:30: 30m). Without a task: S4,S5,S6,S11.
# - threads: S1 <- S3 <- S7 <- S8 (4 messages), S5 <- S6 (2): 2, longest #1, median 3.
EXPECTED_TEXT = """\
Totals
  messages:        11
  agents:          4
  days:            3
  broadcasts:      2
  direct messages: 9
  CC copies:       8
  first:           2026-02-19 23:50:00
  last:            2026-02-21 11:40:00

Agents
  agent  sent  direct recv  bcast sent  CC recv  busiest hour  first seen           last seen
  atlas     3            5           1        0  00:00         2026-02-19 23:50:00  2026-02-21 11:40:00
  juno      3            2           0        0  23:00         2026-02-19 23:50:00  2026-02-21 11:00:00
  vega      3            1           0        0  11:00         2026-02-20 09:00:00  2026-02-21 11:40:00
  lead      2            1           1        8  00:00         2026-02-19 23:50:00  2026-02-21 11:40:00

Who talks to whom (direct messages, top 10)
  from      to     messages
  juno   →  atlas         3
  atlas  →  juno          2
  vega   →  atlas         2
  lead   →  vega          1
  vega   →  lead          1

Response times (direct messages answered within 24 h)
  responder  answered  median   p90
  atlas             2  17m 30s  20m 00s
  juno              1  9h 55m   9h 55m
  lead              1  30m 00s  30m 00s

Messages per day
  day         messages
  2026-02-19         2
  2026-02-20         6
  2026-02-21         3

Messages per hour of day
  hour   messages
  00:00         2
  01:00         0
  02:00         0
  03:00         0
  04:00         0
  05:00         0
  06:00         0
  07:00         0
  08:00         0
  09:00         2
  10:00         2
  11:00         3
  12:00         0
  13:00         0
  14:00         0
  15:00         0
  16:00         0
  17:00         0
  18:00         0
  19:00         0
  20:00         0
  21:00         0
  22:00         0
  23:00         2

Tasks
  task  messages  agents           first                last                 span
  T-1          5  atlas,juno       2026-02-19 23:50:00  2026-02-20 10:05:00  10h 15m
  T-2          2  atlas,juno,vega  2026-02-21 11:00:00  2026-02-21 11:30:00  30m 00s
  messages without a task: 4

Threads (reply chains)
  threads:       2
  longest:       #1 (4 messages)
  median length: 3
"""  # noqa: E501  (the exact output, columns and all)


def test_stats_text_every_number_by_hand(team_logs: Path) -> None:
    code, out, err = run("stats", "--log-dir", str(team_logs))
    assert (code, err) == (0, "")
    assert out == EXPECTED_TEXT


def test_stats_json_same_numbers(team_logs: Path) -> None:
    code, out, _ = run("stats", "--log-dir", str(team_logs), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"] == {
        "messages": 11, "agents": 4, "days": 3, "broadcasts": 2, "direct": 9,
        "cc_copies": 8, "undated": 0, "first": "2026-02-19T23:50:00",
        "last": "2026-02-21T11:40:00",
    }  # fmt: skip
    assert data["agents"][3] == {
        "agent": "lead", "sent": 2, "received": 1, "broadcasts_sent": 1, "cc_received": 8,
        "busiest_hour": 0, "first_seen": "2026-02-19T23:50:00",
        "last_seen": "2026-02-21T11:40:00",
    }  # fmt: skip
    assert [a["agent"] for a in data["agents"]] == ["atlas", "juno", "vega", "lead"]
    assert data["pairs"][0] == {"from": "juno", "to": "atlas", "messages": 3}
    assert len(data["pairs"]) == 5
    atlas, juno, lead = data["response_times"]
    assert atlas == {
        "responder": "atlas", "count": 2, "median_seconds": 1050.0, "p90_seconds": 1200.0,
        "distribution": {"< 1 min": 0, "1-5 min": 0, "5-15 min": 0, "15-60 min": 2,
                         "1-4 h": 0, "4-24 h": 0},
    }  # fmt: skip
    assert (juno["responder"], juno["count"], juno["median_seconds"]) == ("juno", 1, 35700)
    assert juno["distribution"]["4-24 h"] == 1
    assert (lead["responder"], lead["p90_seconds"]) == ("lead", 1800)
    assert data["per_day"] == {"2026-02-19": 2, "2026-02-20": 6, "2026-02-21": 3}
    assert sum(data["per_hour"]) == 11 and data["per_hour"][11] == 3
    # 2026-02-19 is a Thursday: S1, S2 at 23h; Friday 20th; Saturday 21st at 11h.
    assert data["weekday_hour"]["Thu"][23] == 2
    assert data["weekday_hour"]["Fri"][0] == 2 and data["weekday_hour"]["Fri"][10] == 2
    assert data["weekday_hour"]["Sat"][11] == 3
    assert data["tasks"] == [
        {"task_id": "T-1", "messages": 5, "agents": ["atlas", "juno"],
         "first": "2026-02-19T23:50:00", "last": "2026-02-20T10:05:00",
         "span_seconds": 36900.0},
        {"task_id": "T-2", "messages": 2, "agents": ["atlas", "juno", "vega"],
         "first": "2026-02-21T11:00:00", "last": "2026-02-21T11:30:00",
         "span_seconds": 1800.0},
    ]  # fmt: skip
    assert data["without_task"] == 4
    threads = data["threads"]
    assert (threads["count"], threads["median_length"]) == (2, 3)
    assert threads["longest"]["root"] == 1 and threads["longest"]["length"] == 4
    assert [(t["root"], t["length"]) for t in threads["busiest"]] == [(1, 4), (8, 2)]


def test_stats_window_counts_only_messages_inside(team_logs: Path) -> None:
    # The 20th only: S3-S8, CC copies of S3, S7, S8. S3 answers S1/S2, which are
    # outside: not pending, not counted.
    code, out, _ = run(
        "stats", "--log-dir", str(team_logs), "--since", "2026-02-20", "--until", "2026-02-21",
        "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert (data["totals"]["messages"], data["totals"]["cc_copies"]) == (6, 3)
    responders = {r["responder"]: r["count"] for r in data["response_times"]}
    assert responders == {"juno": 1, "lead": 1}
    # S3's root S1 is outside the range: the thread still has its root's id.
    assert [(t["root"], t["length"]) for t in data["threads"]["busiest"]] == [(1, 4), (8, 2)]


def test_stats_agents_agree_with_the_agents_command(team_logs: Path) -> None:
    _, out, _ = run("stats", "--log-dir", str(team_logs), "--json")
    mine = {
        a["agent"]: (a["sent"], a["received"], a["cc_received"], a["first_seen"], a["last_seen"])
        for a in json.loads(out)["agents"]
    }
    code, out, _ = run("agents", "--log-dir", str(team_logs), "--json")
    assert code == 0
    theirs = {
        row["agent"]: (
            row["sent"], row["received"]["direct"], row["received"]["cc"],
            row["first_seen"], row["last_seen"],
        )
        for row in map(json.loads, out.splitlines())
    }  # fmt: skip
    assert mine == theirs


def test_an_undated_direct_message_counts_for_its_recipient_and_in_the_totals(
    tmp_path: Path,
) -> None:
    """A message whose timestamp cannot be read is in no day, but it is still a message
    its recipient received, and the totals say how many such there are."""
    db, log_dir = tmp_path / "messages.db", tmp_path / "logs"
    serverdb.create(db)
    conn = serverdb.connect(db)
    serverdb.send(conn, "juno", "atlas", "dated", timestamp="2026-02-20T10:00:00")
    serverdb.send(conn, "juno", "atlas", "undated", timestamp="garbage")
    conn.close()
    log_with_real_logger(db, log_dir)
    code, out, _ = run("stats", "--log-dir", str(log_dir), "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["totals"]["messages"], data["totals"]["undated"]) == (2, 1)
    assert data["pairs"] == [{"from": "juno", "to": "atlas", "messages": 2}]
    atlas = next(a for a in data["agents"] if a["agent"] == "atlas")
    assert (atlas["received"], atlas["last_seen"]) == (2, "2026-02-20T10:00:00")
    assert sum(data["per_day"].values()) == 1
    code, out, _ = run("stats", "--log-dir", str(log_dir))
    totals = out.split("\n\n", 1)[0]
    assert "  undated:         1\n" in totals + "\n", totals
    html = tmp_path / "r.html"
    code, _, err = run("report", "--log-dir", str(log_dir), "-o", str(html))
    assert code == 0, err
    assert "<b>1</b><span>undated</span>" in html.read_text()


def test_stats_and_agents_speak_one_vocabulary(team_logs: Path) -> None:
    """The same quantity has the same column name and the same JSON key in both; the
    broadcasts an agent sent and those it received are told apart."""
    _, stats_text, _ = run("stats", "--log-dir", str(team_logs))
    _, agents_text, _ = run("agents", "--log-dir", str(team_logs))
    stats_head = stats_text.split("Agents\n", 1)[1].splitlines()[0].split("  ")
    agents_head = agents_text.splitlines()[0].split("  ")
    stats_cols = {c.strip() for c in stats_head if c.strip()}
    agents_cols = {c.strip() for c in agents_head if c.strip()}
    assert stats_cols & agents_cols == {
        "agent", "sent", "direct recv", "CC recv", "first seen", "last seen",
    }  # fmt: skip
    assert "bcast sent" in stats_cols and "bcast recv" in agents_cols
    _, out, _ = run("stats", "--log-dir", str(team_logs), "--json")
    _, rows, _ = run("agents", "--log-dir", str(team_logs), "--json")
    stats_names = sorted(a["agent"] for a in json.loads(out)["agents"])
    assert stats_names == sorted(json.loads(line)["agent"] for line in rows.splitlines())
