"""`matthan device run` end to end: the real agent on a real clip, a real broker, the real ward subscriber.

Zero loss: the set of event ids the ward station received equals the set the agent generated, through
a broker SIGKILL and restart, a broker outage longer than the keepalive, and an agent SIGKILL and
restart. The clip is vtest (people walking) with a loitering rule of 0.5 s over the whole frame, which
fires about once a second. Receipts come from tests/support/receipts.py (the cloud ingest's stand-in).
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.broker import Mosquitto
from tests.support.receipts import ReceiptStandIn, WardCollector, wait_for

WARD, DEVICE = "ben-nghe", "q1-rex-01"
START = re.compile(r"alert start device=\S+ camera=\S+ event=(\S+)")


def agent_config(
    tmp_path: Path, assets_dir: Path, port: int, *, camera: dict[str, object] | None = None
) -> dict[str, object]:
    cam: dict[str, object] = {
        "id": "rex-north",
        "source": str(assets_dir / "video" / "vtest_480x360.mp4"),
        "loop": True,
        "detect": {"fps": 5},
        "record": {"enabled": False},
        "zones": [
            {
                "name": "plaza",
                "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
                "rules": [{"type": "loitering", "labels": ["person"], "min_duration_s": 0.5}],
            }
        ],
    }
    cam.update(camera or {})
    return {
        "device": {"id": DEVICE, "ward": WARD},
        "broker": {"url": f"mqtt://127.0.0.1:{port}", "keepalive_s": 5},
        "storage": {"path": str(tmp_path / "data"), "budget_mb": 64},
        "health": {"interval_s": 2},
        "outbox": {"resend_after_s": 3},
        "model": {
            "path": str(assets_dir / "models" / "ssd_mobilenet_v1_coco_quant.tflite"),
            "labels": str(assets_dir / "models" / "coco_labels.txt"),
            "threads": 1,
        },
        "cameras": [cam],
    }


def write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


class AgentProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "AgentProcess":
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "matthan", "device", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def generated(self) -> set[str]:
        return set(START.findall(self.log.read_text())) if self.log.exists() else set()


def held_alerts(storage: Path) -> tuple[set[str], int]:
    """Alert starts still in the outbox, and the persisted alerts_total."""
    db = sqlite3.connect(storage / "outbox.db")
    try:
        held = {r[0] for r in db.execute("SELECT event_id FROM messages WHERE kind = 'alert'")}
        row = db.execute("SELECT value FROM meta WHERE key = 'alerts_total'").fetchone()
        return held, int(row[0]) if row else 0
    finally:
        db.close()


def _save_broker(broker: Mosquitto) -> None:
    db = broker.workdir / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else 0
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: db.exists() and db.stat().st_mtime_ns != before, 10, "the broker's save")


@pytest.fixture
def station(broker: Mosquitto) -> Iterator[tuple[WardCollector, ReceiptStandIn]]:
    ward = WardCollector(broker.port, WARD).start()
    cloud = ReceiptStandIn(broker.port).start()
    yield ward, cloud
    cloud.stop()
    ward.stop()


def _settle(agent: AgentProcess, ward: WardCollector, timeout: float = 30) -> None:
    """Wait until the ward has every alert the agent has logged so far."""
    wait_for(lambda: agent.generated() <= ward.seen(), timeout, "the ward to catch up with the agent")


def _finish(agent: AgentProcess, ward: WardCollector, storage: Path) -> None:
    """Stop the agent cleanly and check: every generated alert reached the ward, and the count matches
    the agent's own alerts_total (nothing generated that was not logged, nothing lost)."""
    _settle(agent, ward)
    assert agent.signal(signal.SIGTERM) == 0
    generated = agent.generated()
    held, alerts_total = held_alerts(storage)
    # What the agent made after the last settle is either at the ward or still in its outbox;
    # what it published just before it stopped may still be on its way to the ward.
    wait_for(lambda: generated <= ward.seen() | held, 30, "alerts in flight at the stop to reach the ward")
    assert ward.seen() | held == generated
    assert alerts_total == len(generated)


def test_zero_loss_through_broker_sigkill_and_outage(
    tmp_path: Path, assets_dir: Path, broker: Mosquitto, station: tuple[WardCollector, ReceiptStandIn]
) -> None:
    ward, cloud = station
    cfg = write_config(tmp_path / "device.yaml", agent_config(tmp_path, assets_dir, broker.port))
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        wait_for(lambda: len(agent.generated()) >= 3, 40, "first alerts")
        # A station's and the ingest's sessions are days old in the field, long since written by the
        # broker's autosave; here they are seconds old, so ask for that save (SIGUSR1) first.
        # Without it the crash forgets who subscribed, not just what was queued.
        _save_broker(broker)
        broker.kill()  # SIGKILL: what it acknowledged but had not saved is gone
        broker.start()
        wait_for(lambda: len(agent.generated()) >= 6, 30, "alerts after the crash")
        broker.stop()
        time.sleep(5 + 2)  # longer than the keepalive; the agent keeps detecting into its outbox
        broker.start()
        wait_for(lambda: len(agent.generated()) >= 12, 30, "alerts after the outage")
        _finish(agent, ward, tmp_path / "data")
    finally:
        if agent.proc and agent.proc.poll() is None:
            agent.proc.kill()
    log = agent.log.read_text()
    assert "mqtt disconnected" in log and log.count("mqtt connected") >= 3
    assert len(ward.seen()) >= 12


def test_zero_loss_through_agent_sigkill_and_restart(
    tmp_path: Path, assets_dir: Path, broker: Mosquitto, station: tuple[WardCollector, ReceiptStandIn]
) -> None:
    ward, cloud = station
    cloud.pause()  # no receipts: everything stays in the outbox when the agent dies
    cfg = write_config(tmp_path / "device.yaml", agent_config(tmp_path, assets_dir, broker.port))
    log = tmp_path / "agent.log"
    first = AgentProcess(cfg, log).start()
    try:
        wait_for(lambda: len(first.generated()) >= 5, 40, "alerts before the kill")
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    finally:
        if first.proc and first.proc.poll() is None:
            first.proc.kill()
    held, total = held_alerts(tmp_path / "data")
    before = first.generated()
    assert total >= len(before) >= 5 and held, "unreceipted alerts are on disk after the kill"
    cloud.resume()
    second = AgentProcess(cfg, log).start()  # same log: generated() covers both runs
    try:
        wait_for(lambda: len(second.generated()) >= len(before) + 3, 40, "alerts after restart")
        _finish(second, ward, tmp_path / "data")
    finally:
        if second.proc and second.proc.poll() is None:
            second.proc.kill()


def test_sigterm_stops_cleanly_and_keeps_the_queue(
    tmp_path: Path, assets_dir: Path, broker: Mosquitto
) -> None:
    """With no cloud to receipt, a clean stop keeps every alert for the next start, and says offline."""
    cfg = write_config(tmp_path / "device.yaml", agent_config(tmp_path, assets_dir, broker.port))
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        wait_for(lambda: len(agent.generated()) >= 2, 40, "alerts")
        # A second agent on the same storage (and so the same outbox and client id) is refused.
        second = subprocess.run(
            [sys.executable, "-m", "matthan", "device", "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"another agent (pid {agent.proc.pid}) is running" in second.stderr  # type: ignore[union-attr]
        assert agent.signal(signal.SIGINT) == 0
    finally:
        if agent.proc and agent.proc.poll() is None:
            agent.proc.kill()
    held, total = held_alerts(tmp_path / "data")
    assert held == agent.generated() and total == len(held)
    text = agent.log.read_text()
    assert "Traceback" not in text
    order = [text.index(s) for s in ("camera stopped", "mqtt stopped", "agent stopped")]
    assert order == sorted(order), "cameras first, then the link"


def test_run_with_a_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("device: {id: Q1, ward: x}\n")
    out = subprocess.run(
        [sys.executable, "-m", "matthan", "device", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and out.stderr.startswith("matthan: ")


def test_systemd_notify_ready_watchdog_stopping(tmp_path: Path, assets_dir: Path, broker: Mosquitto) -> None:
    """The agent speaks sd_notify on NOTIFY_SOCKET: READY once started, WATCHDOG while its control loop
    runs (every WATCHDOG_USEC / 2), STOPPING on SIGTERM."""
    import socket

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    cfg = write_config(tmp_path / "device.yaml", agent_config(tmp_path, assets_dir, broker.port))
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "matthan", "device", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        got: list[str] = []
        while got.count("WATCHDOG=1") < 3:
            got.append(sock.recv(256).decode())
        assert got[0] == "READY=1"
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in got:
            got.append(sock.recv(256).decode())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_systemd_unit_restarts_and_watches_the_agent() -> None:
    import configparser
    import shutil

    unit = Path(__file__).resolve().parents[2] / "deploy" / "matthan-device.service"
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(unit)
    svc = cp["Service"]
    assert svc["Type"] == "notify" and svc["Restart"] == "on-failure"
    assert int(svc["WatchdogSec"]) > 0
    assert "device run --config" in svc["ExecStart"]
    if shutil.which("systemd-analyze"):
        out = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30
        )
        problems = [ln for ln in out.stderr.splitlines() if ln.strip() and "is not executable" not in ln]
        assert problems == [], problems
