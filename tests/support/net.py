"""Loopback ports and waiting for servers: every test server listens on 127.0.0.1 only."""

import os
import socket
import time

# A readiness bound says when to give up, not how long a thing takes. The suite must pass with both
# cores busy (CONTRIBUTING.md), where a process start or a hand-off takes several times as long as
# on a quiet machine, so every wait helper stretches the bound it is given by this factor. A test
# that passes waits no longer for it; one that fails says so later.
PATIENCE = float(os.environ.get("MATTHAN_TEST_PATIENCE", "3"))


def patient(timeout: float) -> float:
    return timeout * PATIENCE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    timeout = patient(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    timeout = patient(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout}s")
