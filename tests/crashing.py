"""A writer that dies in the middle of a batch, standing in for ``kill -9`` in
in-process tests (the crash points under a real process are exercised elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence

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
