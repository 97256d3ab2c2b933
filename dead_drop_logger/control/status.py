"""``status``: is the daemon running, and how far behind the database is it?

Exit codes follow LSB ``status``: 0 running, 1 dead but the PID file remains (stale),
3 not running, 4 the PID file cannot be read (a directory, or text that is not a pid:
raised as PidFileError or OSError for the command to report); and 150 (the range LSB
leaves to the application) running but with a problem: a database that cannot be read
(missing, not a database, permission denied), named with its reason among the
problems, since the daemon only retries it and says why in its own log. What the daemon follows
comes from the PID file's sidecar, so ``status`` needs no options beyond ``--pid-file``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..clock import Clock, SystemClock, today
from ..config import Settings
from ..crypt.keys import is_encrypted
from ..durations import duration
from ..logdir import layout
from ..logdir.state import StateError, StateStore
from ..record import rotation
from ..record.rooms import find_rooms
from ..record.source import Source, SourceError
from . import pidfile
from .pidfile import Liveness

EXIT_CODES = {Liveness.RUNNING: 0, Liveness.STALE: 1, Liveness.ABSENT: 3}
PROBLEM = 150  # running, but something it follows cannot be read


@dataclass(kw_only=True)
class LogProgress:
    """How far one log directory has got behind its database."""

    database: str | None = None
    log_dir: str | None = None
    last_id_logged: int | None = None
    lag: int | None = None
    today_file: str | None = None
    today_file_bytes: int | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RoomReport(LogProgress):
    """One room of a logger following rooms."""

    name: str

    def lines(self) -> list[str]:
        out = [f"  room {self.name}:"]
        out += _rows(_progress_rows(self), "    ")
        out += [f"    cannot be read: {p}" for p in self.problems]
        return out


@dataclass(kw_only=True)
class Report(LogProgress):
    status: str
    pid_file: str
    pid: int | None = None
    started: str | None = None
    uptime_seconds: int | None = None
    rooms_dir: str | None = None
    rooms: list[RoomReport] | None = None  # None: one database, not rooms
    ship: list[dict[str, Any]] | None = None  # each sink shipping this log directory
    exit_code: int = 3

    def to_json(self) -> str:
        data = asdict(self)
        del data["exit_code"]
        if self.ship is None:
            del data["ship"]
        if self.rooms is None:  # one database: the keys it always had
            del data["rooms"], data["rooms_dir"]
        return json.dumps(data, sort_keys=True)

    def to_text(self) -> str:
        if self.status == Liveness.ABSENT.value:
            return "dead-drop-logger is not running"
        if self.status == Liveness.STALE.value:
            named = f" naming pid {self.pid}" if self.pid else ""
            return (
                f"dead-drop-logger is not running, but its PID file {self.pid_file}"
                f"{named} was left behind (it crashed or was killed)"
            )
        lines = [f"dead-drop-logger is running (pid {self.pid})"]
        started: list[tuple[str, object]] = [
            ("uptime", None if self.uptime_seconds is None else duration(self.uptime_seconds)),
            ("started", self.started),
        ]
        if self.rooms is None:
            lines += _rows([*started, *_progress_rows(self)])
            lines += [f"  problem: {p}" for p in self.problems]
            return "\n".join(lines + self._ship_lines())
        lines += _rows(
            [
                *started,
                ("rooms dir", self.rooms_dir or "none (named rooms only)"),
                ("log dir", self.log_dir),
                ("rooms", len(self.rooms)),
            ]
        )
        lines += [f"  problem: {p}" for p in self.problems]
        for room in self.rooms:
            lines += room.lines()
        return "\n".join(lines + self._ship_lines())

    def _ship_lines(self) -> list[str]:
        if not self.ship:
            return []
        from ..ship.report import text_of

        return [f"  {text_of(sink)}" for sink in self.ship]


def _progress_rows(report: LogProgress) -> list[tuple[str, object]]:
    """What the text says of how far a log directory has got."""
    return [
        ("database", report.database),
        ("log dir", report.log_dir),
        ("last id logged", _last_id(report.last_id_logged, report.lag)),
        ("lag", None if report.lag is None else f"{report.lag} messages not yet logged"),
        ("today's file", _file(report.today_file, report.today_file_bytes)),
    ]


def _rows(rows: list[tuple[str, object]], indent: str = "  ") -> list[str]:
    return [f"{indent}{name + ':':<16}{'unknown' if v is None else v}" for name, v in rows]


def gather(pid_path: Path, clock: Clock | None = None) -> Report:
    """Everything ``status`` says, from the PID file, the state file and the database."""
    clock = clock or SystemClock()
    held = pidfile.read(pid_path, strict=True)
    report = Report(
        status=held.liveness.value,
        pid_file=str(pid_path),
        pid=held.pid,
        exit_code=EXIT_CODES[held.liveness],
    )
    if held.liveness is not Liveness.RUNNING:
        return report
    info = held.info
    started = info.get("started")
    if isinstance(started, int | float):
        began = dt.datetime.fromtimestamp(started, dt.UTC)
        report.started = began.astimezone().isoformat(timespec="seconds")
        report.uptime_seconds = max(0, int((clock.now() - began).total_seconds()))
    if "rooms" in info and isinstance(info.get("log_dir"), str):
        _rooms(report, info, clock=clock)
    elif not isinstance(info.get("database"), str) or not isinstance(info.get("log_dir"), str):
        report.problems.append("the daemon did not record what it follows")
    else:
        db, log_dir = Path(info["database"]), Path(info["log_dir"])
        report.database, report.log_dir = str(db), str(log_dir)
        _progress(report, db, log_dir, utc=bool(info.get("utc")), clock=clock)
        if report.lag is None and not report.problems:  # no state yet: is it readable?
            _probe(report, db)
    if report.problems or any(room.problems for room in report.rooms or ()):
        report.exit_code = PROBLEM
    _ship(report)
    return report


def _ship(report: Report) -> None:
    """Each sink shipping the log directory: position, lag, last error."""
    if report.log_dir is None or not (Path(report.log_dir) / ".ship").is_dir():
        return
    from ..ship.report import sinks

    found = sinks(Path(report.log_dir))
    if found:
        report.ship = [sink.to_dict() for sink in found]


def _rooms(report: Report, info: dict[str, Any], *, clock: Clock) -> None:
    """Every room the daemon follows now: those in its rooms directory, and the named."""
    log_dir = Path(info["log_dir"])
    report.log_dir = str(log_dir)
    rooms_dir = info.get("rooms_dir")
    named = info.get("rooms") if isinstance(info.get("rooms"), dict) else {}
    settings = Settings(
        log_dir=log_dir,
        rooms_dir=Path(rooms_dir) if isinstance(rooms_dir, str) else None,
        rooms=tuple((str(name), Path(str(db))) for name, db in (named or {}).items()),
    )
    report.rooms_dir = str(settings.rooms_dir) if settings.rooms_dir else None
    try:
        found = find_rooms(settings)
    except OSError as exc:
        report.problems.append(f"cannot list the rooms in {rooms_dir}: {exc.strerror}")
        found = dict(settings.rooms)
    report.rooms = []
    for name, db in sorted(found.items()):
        room = RoomReport(name=name, database=str(db), log_dir=str(log_dir / name))
        _progress(room, db, log_dir / name, utc=bool(info.get("utc")), clock=clock)
        if room.lag is None and not room.problems:  # no state yet: say why, if we can
            _probe(room, db)
        report.rooms.append(room)


def _probe(report: LogProgress, db: Path) -> None:
    """Whether the database can be read; why not, among the problems."""
    source = Source(db)
    try:
        source.max_id()
    except SourceError as exc:
        report.problems.append(str(exc))
    finally:
        source.close()


def _progress(report: LogProgress, db: Path, log_dir: Path, *, utc: bool, clock: Clock) -> None:
    try:
        state = StateStore(log_dir).load()
    except StateError as exc:
        report.problems.append(str(exc))
        state = None
    if state is not None and state.logged:
        report.last_id_logged = state.logged[-1][1]
    if state is not None:
        source = Source(db, utc=utc)
        try:
            report.lag = source.count_after(state.position)
        except SourceError as exc:
            report.problems.append(str(exc))
        finally:
            source.close()
    day = today(clock, utc).isoformat()
    if is_encrypted(log_dir):  # sealed segments: the newest of today
        sealed = [f for f in layout.log_files(log_dir) if f.encrypted and f.day.isoformat() == day]
        if not sealed:
            report.today_file = str(log_dir / f"{layout.MESSAGES}-{day}.*.json{layout.AGE}")
            return  # (not created yet: no segment of today sealed yet)
        report.today_file = str(sealed[-1].path)
        with contextlib.suppress(OSError):
            report.today_file_bytes = sealed[-1].path.stat().st_size
        return
    # the part being written: with --max-bytes, today's highest, not part 0
    part, _size = rotation.open_part(log_dir, day, rotation.latest_parts(log_dir))
    path = layout.day_path(log_dir, day, part)
    report.today_file = str(path)
    try:
        report.today_file_bytes = path.stat().st_size
    except OSError:
        report.today_file_bytes = None


def _last_id(last: int | None, lag: int | None) -> int | str | None:
    return "none yet" if last is None and lag is not None else last


def _file(path: str | None, size: int | None) -> str | None:
    if path is None:
        return None
    return f"{path} ({'not created yet' if size is None else f'{size} bytes'})"
