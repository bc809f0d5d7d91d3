"""systemd's notify protocol (READY, STOPPING, WATCHDOG) over a plain unix datagram socket."""

import logging
import os
import socket

log = logging.getLogger("matthan.device.agent")


class SdNotify:
    """systemd's notify protocol over a plain unix datagram socket (no dependency)."""

    def __init__(self, address: str | None, watchdog_usec: int | None) -> None:
        self.address = address
        # Pet at half the watchdog period, as sd_watchdog_enabled(3) advises.
        self.watchdog_every_s = watchdog_usec / 2e6 if watchdog_usec else 10.0

    @classmethod
    def from_env(cls) -> "SdNotify":
        usec = os.environ.get("WATCHDOG_USEC")
        return cls(os.environ.get("NOTIFY_SOCKET"), int(usec) if usec and usec.isdigit() else None)

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(message.encode(), addr)
            return True
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", message, exc)
            return False
