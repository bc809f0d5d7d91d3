"""The agent's control loop on its own thread: messages handled in order, the offline check and the
liveness beats kept up, a failing step logged without ending the loop."""

import logging
import socket
import threading
from pathlib import Path

import pytest

from device import heartbeat
from device.control import ControlLoop
from device.sd_notify import SdNotify
from tests.support.receipts import wait_for


class Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, bytes, str]] = []
        self.checks = 0

    def add(self, what: str, payload: bytes = b"") -> None:
        with self.lock:
            self.items.append((what, payload, threading.current_thread().name))

    def check(self, now: float) -> None:
        self.checks += 1


def loop(tmp_path: Path, seen: Seen, desired: object = None) -> ControlLoop:
    return ControlLoop(
        desired=desired or (lambda p: seen.add("desired", p)),  # type: ignore[arg-type]
        command=lambda p: seen.add("cmd", p),
        connected=lambda: seen.add("connected"),
        check_offline=seen.check,
        notify=SdNotify(None, None),
        storage=tmp_path,
    )


def test_messages_are_handled_in_order_on_the_control_thread(tmp_path: Path) -> None:
    seen = Seen()
    control = loop(tmp_path, seen)
    control.desired(b"d1")
    control.command(b"c1")
    control.connected()
    control.start()
    try:
        wait_for(lambda: len(seen.items) == 3, 10, "three messages")
        assert seen.items == [
            ("desired", b"d1", "agent-control"),
            ("cmd", b"c1", "agent-control"),
            ("connected", b"", "agent-control"),
        ]
        wait_for(lambda: seen.checks >= 1, 10, "the offline check")
        assert heartbeat.check(tmp_path) < heartbeat.MAX_AGE_S
    finally:
        control.stop()
    assert not control.alive


def test_a_failing_handler_is_logged_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()

    def bad(payload: bytes) -> None:
        raise ValueError("broken desired config")

    control = loop(tmp_path, seen, desired=bad)
    with caplog.at_level(logging.ERROR, logger="matthan.device.agent"):
        control.start()
        try:
            control.desired(b"x")
            control.command(b"after")
            wait_for(lambda: [i[0] for i in seen.items] == ["cmd"], 10, "the command after the failure")
            assert control.alive
        finally:
            control.stop()
    assert "control step failed what=desired" in caplog.text


def test_a_dead_part_stops_the_beats_so_the_agent_is_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A real notify socket, as systemd holds one; pets every 0.1 s (WATCHDOG_USEC 0.2 s).
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(tmp_path / "notify"))
    manager.settimeout(10)
    seen = Seen()
    dead: list[str] = []
    control = ControlLoop(
        desired=lambda p: None,
        command=lambda p: None,
        connected=lambda: None,
        check_offline=seen.check,
        notify=SdNotify(str(tmp_path / "notify"), 200_000),
        storage=tmp_path,
        dead=lambda: list(dead),
    )
    with caplog.at_level(logging.ERROR, logger="matthan.device.agent"):
        control.start()
        try:
            assert manager.recv(64) == b"WATCHDOG=1"
            dead.append("clip-maker")
            wait_for(lambda: control.dead_parts == ["clip-maker"], 10, "the dead part seen")
            while True:  # what was sent before the loop saw it
                manager.settimeout(0)
                try:
                    manager.recv(64)
                except BlockingIOError:
                    break
            checks = seen.checks
            wait_for(lambda: seen.checks >= checks + 2, 10, "two more offline checks (~2 s of loop)")
            with pytest.raises(BlockingIOError):
                manager.recv(64)
        finally:
            control.stop()
            manager.close()
    assert caplog.text.count("agent part stopped parts=clip-maker") == 1
