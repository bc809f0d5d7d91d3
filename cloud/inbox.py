"""The bounded FIFO between paho's network thread and the ingest writer (cloud/ingest.py): bounded
by count and by bytes; a full inbox drops and counts, never blocks paho."""

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    retained: bool
    received: float  # time.time() when paho handed it over


class Inbox:
    """The bounded FIFO between paho's thread and the writer. deque.append and popleft are atomic
    under the GIL, so a message costs the paho thread no lock: queue.Queue took a lock and notified
    a condition on every put, and the writer paid the same again on every get. The event is only
    set when the writer may be asleep (it clears it before it sleeps)."""

    def __init__(self, maxsize: int, max_bytes: int | None = None) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        # Payload bytes queued: added by paho's thread, taken off by the writer. `+=` on an int
        # attribute is not atomic, so each side keeps its own running total and the difference is
        # the queue's size (each total is written by one thread only).
        self._bytes_in = 0
        self._bytes_out = 0
        self._items: deque[Inbound] = deque()
        self._ready = threading.Event()

    @property
    def nbytes(self) -> int:
        return self._bytes_in - self._bytes_out

    def put(self, item: Inbound) -> bool:
        """False when full by count or by bytes (the caller counts the drop)."""
        items = self._items
        if len(items) >= self.maxsize:
            return False
        size = len(item.payload) + len(item.topic)
        if self.max_bytes is not None and self._bytes_in - self._bytes_out + size > self.max_bytes:
            return False
        self._bytes_in += size
        items.append(item)
        if not self._ready.is_set():
            self._ready.set()
        return True

    def qsize(self) -> int:
        return len(self._items)

    def _wait(self, timeout: float) -> None:
        self._ready.clear()
        if not self._items:  # anything appended after the clear has set the event again
            self._ready.wait(timeout)

    def take(self, max_items: int, first_wait: float, batch_wait: float) -> list[Inbound]:
        """Up to max_items: waits first_wait for the first, then batch_wait at most for the rest."""
        items = self._items
        if not items:
            self._wait(first_wait)
            if not items:
                return []
        out: list[Inbound] = []
        pop = items.popleft
        deadline = time.monotonic() + batch_wait
        while True:
            start = len(out)
            with contextlib.suppress(IndexError):
                for _ in range(min(max_items - len(out), len(items))):
                    out.append(pop())
            self._bytes_out += sum(len(i.payload) + len(i.topic) for i in out[start:])
            if len(out) >= max_items:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self._wait(left)
