"""The attention worker's clock. Escalation waits minutes; tests and drills cannot, so the clock
can be moved forward by writing an offset (seconds) into a file (Settings.attention.clock_file):
every process reading that file agrees on the moved time."""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from matthan_wire.timeutil import utc_now


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return utc_now()


class OffsetFileClock:
    """utc_now() plus the seconds written in `path` (0 when the file is missing or unreadable)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> datetime:
        try:
            offset = float(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return utc_now() + timedelta(seconds=offset)


def make_clock(path: Path | None) -> Clock:
    return OffsetFileClock(path) if path is not None else SystemClock()
