"""A named daemon thread that calls one step over and over until it is asked to stop.

Every background job of ours (the retention job, station delivery, the attention worker, the
outbox publisher, the agent's control loop …) is such a thread: a job either is one (subclass,
passing its step) or holds several. The step does its own waiting (on `stopping`, on a wake event
or a queue, with a timeout) and catches the failures it expects, so one bad pass does not end the
job. Whatever escapes it ends the thread: that is logged once, counted in `crashes`, and `alive`
turns false, which is what health reads to go red.
"""

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("matthan.worker")


class WorkerThread:
    def __init__(
        self,
        name: str,
        step: Callable[[], None],
        *,
        wake: Callable[[], None] | None = None,
        stop_timeout_s: float = 5.0,
    ) -> None:
        """`wake` interrupts the step's wait when a stop is asked (it sets the owner's wake event,
        or puts a token in its queue); a step that waits on `stopping` needs none. `stop()` waits
        at most `stop_timeout_s` for the step in progress to end."""
        self.name = name
        self.stopping = threading.Event()
        self.crashes = 0
        self.stop_timeout_s = stop_timeout_s
        self._work = step
        self._wake_hook = wake
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def ask_stop(self) -> None:
        """Ask without waiting: an owner of several threads asks them all, then joins each."""
        self.stopping.set()
        if self._wake_hook is not None:
            self._wake_hook()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(self.stop_timeout_s if timeout is None else timeout)

    def stop(self, timeout: float | None = None) -> None:
        self.ask_stop()
        self.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        try:
            while not self.stopping.is_set():
                self._work()
        except BaseException:
            self.crashes += 1
            log.exception("thread crashed thread=%s crashes=%d", self.name, self.crashes)
