"""The agent's liveness on disk, for container health checks (`matthan device healthcheck`).

Under systemd the watchdog does this job; a container has no systemd, so the agent's control loop
(the same loop that pets the watchdog) touches a file, and the check reads its age. A wedged loop
stops touching it, and the container is marked unhealthy.
"""

import os
import time
from pathlib import Path

from device.errors import DeviceError

FILE = "heartbeat"
# The control loop beats every 10 s without a systemd watchdog; three missed beats is a hang.
MAX_AGE_S = 30.0


def beat(storage: Path) -> None:
    path = storage / FILE
    path.touch(exist_ok=True)
    os.utime(path)


def check(storage: Path, max_age_s: float = MAX_AGE_S, now: float | None = None) -> float:
    """The heartbeat's age in seconds; a DeviceError when the agent is absent or hung."""
    path = storage / FILE
    try:
        age = (now if now is not None else time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        raise DeviceError(f"no agent heartbeat in {storage}: is `matthan device run` running?") from None
    if age > max_age_s:
        raise DeviceError(f"agent heartbeat is {age:.0f} s old (limit {max_age_s:.0f} s): the agent is hung")
    return age
