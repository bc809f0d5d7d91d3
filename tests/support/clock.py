"""A clock the test moves: minutes of an outage in seconds of test, with the same code paths."""

import threading
import time


class SimClock:
    """Unix time that only moves when told (start: now). Thread-safe; pass `clock.now` as a clock."""

    def __init__(self, start: float | None = None) -> None:
        self._t = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += seconds
            return self._t
