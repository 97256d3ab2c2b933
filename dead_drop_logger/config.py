"""Settings shared by every way of running the logger, and where files live by default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOME = Path("~/.dead-drop").expanduser()
DEFAULT_DB = HOME / "messages.db"
DEFAULT_LOG_DIR = HOME / "logs"
DEFAULT_PID_FILE = HOME / "logger.pid"
DEFAULT_DAEMON_LOG = HOME / "logger.log"
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_RETENTION_DAYS = 30
DEFAULT_SEAL_INTERVAL = 60.0  # encrypted: a segment is sealed at most this long after its start
LEVELS = ("debug", "info", "warning", "error")  # --log-level
ROOM_DB_NAME = "messages.db"  # a hub room's database: ROOMS_DIR/NAME/messages.db


@dataclass(frozen=True)
class Settings:
    """What one logger follows, where it writes, and how."""

    db: Path = DEFAULT_DB
    log_dir: Path = DEFAULT_LOG_DIR
    poll_interval: float = DEFAULT_POLL_INTERVAL
    import_historical: bool = False
    utc: bool = False
    retention_days: int = DEFAULT_RETENTION_DAYS  # 0 keeps everything
    max_bytes: int | None = None  # None: one file per day
    keep_files: int | None = None  # None: no limit on the number of files
    compress_after: int | None = None  # None: never compress
    no_watch: bool = False  # True: no change notifications, the poll interval only
    # Rooms (several databases in one process, each into log_dir/NAME/): every
    # rooms_dir/NAME/messages.db, and the rooms named explicitly. With neither, ``db`` is
    # the one database, logged into log_dir itself as always.
    rooms_dir: Path | None = None
    rooms: tuple[tuple[str, Path], ...] = ()
    # Encryption at rest (docs/encryption.md): the age recipients every log file is
    # sealed to; empty: plain files, as before.
    encrypt_to: tuple[str, ...] = ()
    seal_interval: float = DEFAULT_SEAL_INTERVAL
    # Agent-specific keys (docs/encryption.md#agent-specific-keys): each message's
    # content sealed to its agents' keys ("NAME=RECIPIENT", as --agent-key takes them:
    # what a daemon records is what restart gives back) and the escrow's.
    encrypt_content_to_agents: bool = False
    agents_keys: tuple[str, ...] = ()
    escrow_to: tuple[str, ...] = ()

    @property
    def has_rooms(self) -> bool:
        return self.rooms_dir is not None or bool(self.rooms)
