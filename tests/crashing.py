"""A writer that dies in the middle of a batch, standing in for ``kill -9`` in
in-process tests (the crash points under a real process are exercised elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dead_drop_logger.crypt import keys, segments
from dead_drop_logger.record.sealed import SegmentWriter
from dead_drop_logger.record.writer import Chunk, DayWriter


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, no cleanup, no except handlers."""


class CrashingWriter(DayWriter):
    """Writes every file of a batch but the last fully, half of the last, then dies."""

    def append(
        self, chunks: Sequence[Chunk], sizes: dict[str, int], *, durable: bool = True
    ) -> None:
        super().append(chunks[:-1], sizes, durable=durable)
        last = chunks[-1]
        with open(self.log_dir / last.name, "ab") as fh:
            fh.write(last.data[: len(last.data) // 2])
        raise Crash


class CrashingSegmentWriter(SegmentWriter):
    """Encrypted: seals every segment of a batch but the last; of the last, ``at``
    "temp" leaves half its ciphertext under the temporary name, "linked" links it whole
    into place; then dies (before the state records any of them)."""

    def __init__(self, *args: Any, at: str = "temp", **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.at = at

    def append(
        self, chunks: Sequence[Chunk], sizes: dict[str, tuple[int, int]], *, durable: bool = True
    ) -> None:
        super().append(chunks[:-1], sizes, durable=durable)
        last = self.log_dir / chunks[-1].name
        if self.at == "linked":
            segments.write_segment(last, chunks[-1].data, self.recipients)
        else:
            sealed = keys.encrypt(chunks[-1].data, self.recipients)
            segments.temp_path(last).write_bytes(sealed[: len(sealed) // 2])
        raise Crash
