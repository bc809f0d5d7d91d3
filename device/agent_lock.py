"""One agent per storage folder: a second one would share the outbox and, with the same client id,
kick the first off the broker over and over (docs/lessons.md). An flock on `agent.lock`, which
holds the owner's pid for the message; the kernel releases it when the process ends, however."""

import fcntl
import os
from pathlib import Path

from device.errors import DeviceError

FILE = "agent.lock"


class AgentLock:
    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self._fd: int | None = None

    def take(self) -> None:
        """Raises DeviceError, naming the other agent's pid, when one holds the folder."""
        fd = os.open(self.storage / FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DeviceError(
                f"another agent (pid {other}) is running on {self.storage}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None
