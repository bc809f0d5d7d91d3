"""Device outages as alerts, end to end: a real Mosquitto, the cloud (ingest + attention worker), a
device process SIGKILLed so that the broker publishes its Last Will; and a device whose connection
drops ten times in a row (each drop a real will) within the debounce."""

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session, select

from cloud.models import AlertRow, Device
from cloud.settings import AttentionSettings, Settings
from matthan_wire import Kind, Status, Topic, encode, utc_now
from tests.cloud.attention.conftest import ROOT
from tests.cloud.conftest import running
from tests.support.broker import Mosquitto
from tests.support.net import wait_until

DEBOUNCE_S = 4.0


def _settings(broker: Mosquitto, tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        f"sqlite:///{tmp_path / 'cloud.db'}",
        broker.url,
        attention=AttentionSettings(outage_debounce_s=DEBOUNCE_S, tick_s=0.2),
    )


def _outages(engine: Any, device: str) -> list[AlertRow]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(AlertRow).where(AlertRow.type == "device_offline", AlertRow.device_id == device)
            ).all()
        )


def _online(engine: Any, device: str) -> bool | None:
    with Session(engine) as s:
        d = s.get(Device, device)
        return None if d is None else d.online


def _device_process(broker: Mosquitto, device: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cloud.console.device_sim", broker.url, "w1", device, "cam-1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkilled_device_gives_one_outage_alert_and_one_end(
    broker: Mosquitto, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    with running(_settings(broker, tmp_path, make_settings)) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        proc = _device_process(broker, "pi-7")
        try:
            wait_until(lambda: _online(engine, "pi-7"), timeout=30, what="device online")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            wait_until(lambda: _online(engine, "pi-7") is False, timeout=30, what="the will")
            offline_seen = time.monotonic()
            # Within the debounce and a margin for a busy machine; not before the debounce.
            (alert,) = wait_until(lambda: _outages(engine, "pi-7"), timeout=DEBOUNCE_S + 20, what="outage")
            took = time.monotonic() - offline_seen
            print(f"outage alert {took:.1f} s after the will (debounce {DEBOUNCE_S:.0f} s)")
            assert (alert.received_at - alert.started_at).total_seconds() >= DEBOUNCE_S
            assert (alert.category, alert.rule, alert.ended_at, alert.ward) == (
                "outage",
                "device.offline",
                None,
                "w1",
            )
            proc = _device_process(broker, "pi-7")
            wait_until(
                lambda: _outages(engine, "pi-7")[0].ended_at is not None, timeout=30, what="outage end"
            )
            assert len(_outages(engine, "pi-7")) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def _connect_then_drop(broker: Mosquitto, device: str) -> None:
    """The device's MQTT connection dropping: connect with a will, say online, lose the socket."""
    topic = str(Topic(Kind.STATUS, "w1", device))
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flap-{device}", protocol=mqtt.MQTTv5)
    c.will_set(topic, encode(Status(state="offline", at=utc_now())), qos=1, retain=True)
    ready = threading.Event()
    c.on_connect = lambda *_: ready.set()
    c.connect("127.0.0.1", broker.port, keepalive=30)
    deadline = time.monotonic() + 10
    while not ready.is_set() and time.monotonic() < deadline:
        c.loop(timeout=0.05)  # driven here: a network thread would take a second to stop
    info = c.publish(topic, encode(Status(state="online", at=utc_now())), qos=1, retain=True)
    while not info.is_published() and time.monotonic() < deadline:
        c.loop(timeout=0.05)
    assert ready.is_set() and info.is_published()
    sock = c.socket()
    assert sock is not None
    sock.close()  # no DISCONNECT packet: the broker publishes the will


def test_ten_rapid_disconnects_give_at_most_one_alert(
    broker: Mosquitto, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    with running(_settings(broker, tmp_path, make_settings)) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        started = time.monotonic()
        for _ in range(10):
            _connect_then_drop(broker, "pi-9")
        assert time.monotonic() - started < DEBOUNCE_S  # all ten inside the debounce
        wait_until(lambda: _online(engine, "pi-9") is False, timeout=20, what="offline after the last drop")
        wait_until(lambda: _outages(engine, "pi-9"), timeout=DEBOUNCE_S + 10, what="the outage")
        watch = client.app.state.attention.outages  # type: ignore[attr-defined]
        ticks = watch.ticks
        wait_until(lambda: watch.ticks >= ticks + 5, timeout=10, what="five more looks")
        assert len(_outages(engine, "pi-9")) == 1 and watch.opened == 1


def test_long_dead_devices_open_nothing_recent_ones_do(db_url: str) -> None:
    from datetime import timedelta

    from cloud.attention.clock import SystemClock
    from cloud.attention.outages import OutageWatch
    from cloud.db import make_engine, migrate

    engine = make_engine(db_url)
    migrate(engine)
    now = utc_now()
    with Session(engine) as s:
        s.add(Device(id="dead-box", ward="w1", online=False, last_seen=now - timedelta(days=3)))
        s.add(Device(id="just-lost", ward="w1", online=False, last_seen=now - timedelta(minutes=1)))
        s.add(Device(id="fine", ward="w1", online=True, last_seen=now))
        s.commit()
    watch = OutageWatch(engine, SystemClock(), debounce_s=0, max_age_h=24)
    watch.tick()  # suspected
    watch.tick()  # past the (zero) debounce: opened
    assert [a.device_id for a in _outages(engine, "just-lost")] == ["just-lost"]
    assert _outages(engine, "dead-box") == [] and _outages(engine, "fine") == []
    with Session(engine) as s:
        d = s.get(Device, "just-lost")
        assert d is not None
        d.online = True
        s.add(d)
        s.commit()
    watch.tick()
    (ended,) = _outages(engine, "just-lost")
    assert ended.ended_at is not None and watch.ended == 1
    engine.dispose()
