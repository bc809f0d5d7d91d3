"""The agent's control thread: the cloud's desired config and commands, what a (re)connect must
send again, the camera-offline check and the liveness beats, one at a time on one thread.

Paho's network thread only enqueues here (`desired`, `command`, `connected`). Only this loop pets
the systemd watchdog and touches the heartbeat file: if it wedges, systemd (or the container's
health check) restarts the agent. It also stops the beats when a part's own thread has died (the
publisher, the clip maker, the uploader, the detector): a device that would go on detecting but never
deliver or record again is worse than one restarted within the watchdog period.
"""

import logging
import queue
import time
from collections.abc import Callable
from pathlib import Path

from device import heartbeat
from device.sd_notify import SdNotify
from matthan.worker_thread import WorkerThread

log = logging.getLogger("matthan.device.agent")

OFFLINE_CHECK_S = 1.0


class ControlLoop(WorkerThread):
    def __init__(
        self,
        *,
        desired: Callable[[bytes], object],
        command: Callable[[bytes], object],
        connected: Callable[[], None],
        check_offline: Callable[[float], None],
        notify: SdNotify,
        storage: Path,
        dead: Callable[[], list[str]] = list,
    ) -> None:
        self._handlers: dict[str, Callable[[bytes], object]] = {
            "desired": desired,
            "cmd": command,
            "connected": lambda _: connected(),
        }
        self._check_offline = check_offline
        self._notify = notify
        self._storage = storage
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._next_check = 0.0
        self._next_watchdog = 0.0
        self._dead = dead
        self.dead_parts: list[str] = []  # once non-empty, no more beats: the agent is to be restarted
        super().__init__("agent-control", self._step, stop_timeout_s=10.0)

    # ---- inputs (paho's thread: enqueue only) ----------------------------------------------------

    def desired(self, payload: bytes) -> None:
        self._inbox.put(("desired", payload))

    def command(self, payload: bytes) -> None:
        self._inbox.put(("cmd", payload))

    def connected(self) -> None:
        self._inbox.put(("connected", b""))

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._next_check = self._next_watchdog = 0.0
        super().start()

    def _step(self) -> None:
        try:
            what, payload = self._inbox.get(timeout=0.2)
        except queue.Empty:
            what, payload = "", b""
        try:
            if what:
                self._handlers[what](payload)
            now = time.monotonic()
            if now >= self._next_check:
                self._check_offline(now)
                self._next_check = now + OFFLINE_CHECK_S
            if now >= self._next_watchdog and not self._any_dead():
                self._notify.send("WATCHDOG=1")
                heartbeat.beat(self._storage)
                self._next_watchdog = now + self._notify.watchdog_every_s
        except Exception:
            log.exception("control step failed what=%s", what or "tick")

    def _any_dead(self) -> bool:
        if not self.dead_parts:
            self.dead_parts = self._dead()
            if self.dead_parts:
                log.error(
                    "agent part stopped parts=%s: no more watchdog beats, the service manager restarts "
                    "the agent",
                    ",".join(self.dead_parts),
                )
        return bool(self.dead_parts)
