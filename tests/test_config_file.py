"""The settings file: found where the platform keeps it, four layers of precedence, and
every mistake refused in one line before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import serverdb
from click.testing import CliRunner
from conftest import HostileLogs, LoggerProcess, logged_ids, run_command, wait_until

from dead_drop_logger.control import configfile
from dead_drop_logger.control.cli import cli

E = "dead-drop-logger: error: "


def effective(*args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    result = CliRunner().invoke(cli, ["config", "--json", *args], env=env)
    assert result.exit_code == 0, result.output
    settings: dict[str, dict[str, object]] = json.loads(result.stdout)["settings"]
    return settings


def test_the_file_is_where_platformdirs_says(no_user_config: Path) -> None:
    assert configfile.default_path() == no_user_config
    result = CliRunner().invoke(cli, ["config", "--json"])
    data = json.loads(result.stdout)
    assert data["config_file"] == str(no_user_config)
    assert data["config_file_found"] is False


@pytest.mark.parametrize(
    ("xdg", "home"),
    [
        ("/abs/xdg", "/root"),
        (None, "/home/juno"),
        ("", "/home/juno/"),
        (None, "/"),
        ("relative/xdg", "/home/juno"),
        ("  ", "/home/juno"),
        (None, "relative-home"),
    ],
)
def test_the_file_is_found_without_platformdirs_where_it_agrees(
    xdg: str | None, home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configfile finds the directory on Linux without importing platformdirs (start-up)
    when the environment is plain, and asks platformdirs otherwise: the same answer."""
    import platformdirs

    monkeypatch.setattr("sys.platform", "linux")
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    monkeypatch.setenv("HOME", home)
    fast = configfile._linux_config_dir()
    plain = (xdg is not None and xdg.startswith("/")) or (not xdg and home.startswith("/"))
    assert (fast is not None) == plain
    try:
        expected = platformdirs.user_config_dir(configfile.APP)
    except RuntimeError:  # no absolute home: platformdirs refuses, as configfile then does
        assert fast is None
        return
    assert configfile.default_path() == Path(expected) / configfile.FILE_NAME
    if fast is not None:
        assert fast == expected


def test_poll_interval_through_all_four_layers(no_user_config: Path) -> None:
    assert effective()["poll_interval"] == {"value": 1.0, "source": "default"}
    no_user_config.parent.mkdir(parents=True)
    no_user_config.write_text("# mine\n\npoll_interval = 0.5\n")
    assert effective()["poll_interval"] == {"value": 0.5, "source": "config.toml:3"}
    env = {"DEAD_DROP_POLL_INTERVAL": "0.25"}
    assert effective(env=env)["poll_interval"] == {
        "value": 0.25,
        "source": "env DEAD_DROP_POLL_INTERVAL",
    }
    assert effective("--poll-interval", "0.125", env=env)["poll_interval"] == {
        "value": 0.125,
        "source": "command line",
    }


def test_config_text_names_every_setting_and_its_source(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'log_dir = "/srv/logs"\nretention_days = 90\nmax_bytes = "10MB"\n\n'
        '[rooms]\nops = "/srv/ops/messages.db"\n'
    )
    result = CliRunner().invoke(
        cli, ["config", "--config", str(path), "--utc"], env={"DEAD_DROP_KEEP_FILES": "7"}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"settings file: {path}",
        "db                         ops=/srv/ops/messages.db  mine.toml:6",
        "rooms_dir                  (not set)                 default",
        "log_dir                    /srv/logs                 mine.toml:1",
        "poll_interval              1.0                       default",
        "import_historical          false                     default",
        "utc                        true                      command line",
        "retention_days             90                        mine.toml:2",
        "max_bytes                  10485760                  mine.toml:3",
        "keep_files                 7                         env DEAD_DROP_KEEP_FILES",
        "compress_after             (not set)                 default",
        "no_watch                   false                     default",
        "log_level                  info                      default",
        "encrypt_to                 (not set)                 default",
        "seal_interval              60.0                      default",
        "identity                   (not set)                 default",
        "encrypt_content_to_agents  false                     default",
        "agents_keys                (not set)                 default",
        "escrow_to                  (not set)                 default",
        "pid_file                   (not set)                 default",
    ]


BAD_FILES = [
    ("syntax", "a = 1\npoll_interval = = 2\n", "2: TOML syntax error: Invalid value (column 17)"),
    ("unknown key", "# x\npoll_intervall = 2\n", "2: unknown setting 'poll_intervall' (known: "),
    ("wrong type", 'utc = "yes"\n', "1: utc: must be true or false"),
    ("wrong type number", 'poll_interval = "fast"\n', "1: poll_interval: must be a number"),
    ("impossible", "\nretention_days = -3\n", "2: retention_days: must be at least 0 (got -3)"),
    ("impossible zero", "poll_interval = 0\n", "1: poll_interval: must be above 0 (got 0)"),
    ("impossible size", 'max_bytes = "lots"\n', "1: max_bytes: 'lots' is not a size"),
    ("bad level", 'log_level = "loud"\n', "1: log_level: must be one of debug, info,"),
    ("bad room name", '[rooms]\n".hidden" = "/x.db"\n', "2: room name '.hidden' cannot hold"),
    ("room path type", "[rooms]\nops = 3\n", "2: room 'ops': must be the path of its database"),
    ("rooms not a table", "rooms = 3\n", '1: rooms must be a table of NAME = "PATH"'),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, case: str, text: str, expected: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    for command in ("run", "config", "start", "status", "prune"):
        result = CliRunner().invoke(cli, [command, "--config", str(path)])
        assert result.exit_code == 2, (command, result.output)
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"{E}{path}:{expected}"), result.stderr


def test_a_missing_named_file_is_refused_but_a_missing_default_is_not(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = CliRunner().invoke(cli, ["config", "--config", str(missing)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"dead-drop-logger: error: {missing}: no such settings file\n",
    )
    result = CliRunner().invoke(cli, ["config"], env={"DEAD_DROP_CONFIG": str(missing)})
    assert result.exit_code == 2
    assert CliRunner().invoke(cli, ["config"]).exit_code == 0


def test_a_bad_file_stops_the_real_logger_before_it_starts(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    config = Path(home_env["HOME"]) / ".config" / "dead-drop-logger" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'log_dir = "{tmp_path / "logs"}"\nkeep_files = 0\n')
    done = run_command("run", "--db", str(tmp_path / "m.db"), env=home_env)
    assert done.returncode == 2
    assert done.stderr == (
        f"dead-drop-logger: error: {config}:2: keep_files: must be at least 1 (got 0)\n"
    )
    assert not (tmp_path / "logs").exists()


def test_the_real_logger_runs_with_the_file_named_by_the_environment(
    tmp_path: Path, server_db: Path
) -> None:
    logs = tmp_path / "from-the-file"
    config = tmp_path / "settings.toml"
    config.write_text(f'db = "{server_db}"\nlog_dir = "{logs}"\nimport_historical = true\n')
    old = serverdb.send_many(server_db, 2, prefix="old")
    proc = LoggerProcess(server_db, logs, target=[], env={"DEAD_DROP_CONFIG": str(config)}).start()
    try:
        proc.wait_ready()
        new = serverdb.send_many(server_db, 2, prefix="new")
        wait_until(lambda: logged_ids(logs) == old + new, what="the file's log dir to fill")
    finally:
        proc.stop()


def test_every_run_and_start_option_can_be_set_in_the_file() -> None:
    for command in ("run", "start"):
        params = cli.every_command()[command].params
        names = {p.name for p in params if p.expose_value and p.name != "help"}
        assert names <= set(configfile.KEYS), (command, names - set(configfile.KEYS))


READERS = ["search", "thread", "agents", "stats", "report"]


@pytest.mark.parametrize("name", READERS)
def test_reading_commands_take_log_dir_and_utc_from_the_file(
    name: str, no_user_config: Path, tmp_path: Path
) -> None:
    """One log_dir setting serves every command (run writes there, the readers read there)."""
    no_user_config.parent.mkdir(parents=True)
    no_user_config.write_text(f'log_dir = "{tmp_path / "mine"}"\nutc = true\n')
    command = cli.every_command()[name]
    args = ["1"] if name == "thread" else ["-o", "x.html"] if name == "report" else []
    # as the group makes it (a context without the group's settings would make click
    # remember a help option without -h for the command)
    parent = click.Context(cli, info_name="dead-drop-logger", **cli.context_settings)
    ctx = command.make_context(name, list(args), parent=parent)
    assert ctx.params["log_dir"] == tmp_path / "mine"
    assert ctx.params["utc"] is True
    other = tmp_path / "other.toml"
    other.write_text('log_dir = "/elsewhere"\n')
    ctx = command.make_context(name, ["--config", str(other), *args], parent=parent)
    assert (ctx.params["log_dir"], ctx.params["utc"]) == (Path("/elsewhere"), False)


def test_search_reads_the_files_log_dir(hostile_logs: HostileLogs, no_user_config: Path) -> None:
    wanted = CliRunner().invoke(cli, ["search", "--count", "--log-dir", str(hostile_logs.log_dir)])
    assert wanted.exit_code == 0 and int(wanted.stdout) > 0
    no_user_config.parent.mkdir(parents=True)
    no_user_config.write_text(f'log_dir = "{hostile_logs.log_dir}"\n')
    for args in (["search", "--count"], ["stats", "--json"], ["agents"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
    assert CliRunner().invoke(cli, ["search", "--count"]).stdout == wanted.stdout


def test_each_rooms_entry_is_sourced_to_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "ex3.toml"
    path.write_text('[rooms]\nops = "/srv/ops.db"\n\ndev = "/srv/dev.db"\n')
    assert effective("--config", str(path))["db"] == {
        "value": ["ops=/srv/ops.db", "dev=/srv/dev.db"],
        "source": "ex3.toml:2,4",
    }


def test_a_byte_order_mark_is_not_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfpoll_interval = 0.5\n")
    assert effective("--config", str(path))["poll_interval"] == {
        "value": 0.5,
        "source": "bom.toml:1",
    }


def test_the_example_shows_each_default_or_says_there_is_none(tmp_path: Path) -> None:
    """It claimed to be every setting at its default, yet showed max_bytes = "10MB"."""
    defaults = {
        name: {"value": value["value"]}
        for name, value in effective().items()
        if name in configfile.KEYS
    }
    shown = {}
    for line in configfile.EXAMPLE.splitlines():
        setting, _, note = line.removeprefix("# ").partition("#")
        key, sep, value = setting.partition(" = ")
        if sep and key in configfile.KEYS:
            shown[key] = (value.strip(), note)
    assert set(shown) == set(configfile.KEYS)
    for key, (value, note) in shown.items():
        if key == "agents_keys":  # only with encrypt_content_to_agents and real keys,
            assert "default: not set" in note  # (tests/test_encryption_agents.py)
            continue
        one = tmp_path / f"{key}.toml"
        one.write_text(f"{key} = {value}\n")
        parsed = configfile.load(one).values[key]
        default = defaults[key]["value"]
        if default is None:
            assert "default: not set" in note, key
            continue
        if key in ("db", "log_dir", "pid_file"):
            parsed = str(Path(str(parsed)).expanduser())
            default = default[0] if isinstance(default, list) else default
        assert (key, parsed) == (key, default)
