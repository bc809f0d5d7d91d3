"""`matthan ward listen` as a station runs it: a process on a real broker, fed by a device's topics."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from matthan_wire import Alert, AlertAction, AlertState, Kind, Site, StationSync, decode, encode, utc_now
from matthan_wire.topics import device_topic, ward_topic
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for

GOLDEN = Path(__file__).parent.parent / "wire" / "golden"
BASE = decode(Alert, (GOLDEN / "alert_start.json").read_bytes().strip())
WARD, DEVICE = BASE.ward, BASE.device_id


PLACE = {
    "site": Site(
        name="Ngã tư Bến Thành", address="Lê Lợi, phường Bến Thành, Quận 1", lat=10.7725, lon=106.698
    ),
    "zone_title": "vỉa hè cửa phường",
}


def _alert(event_id: str, **kw: object) -> bytes:
    return encode(BASE.model_copy(update={"event_id": event_id, **kw}))


class Station:
    def __init__(self, tmp_path: Path, broker: Mosquitto, *extra: str) -> None:
        self.out = tmp_path / "station.out"
        self.err = tmp_path / "station.err"
        argv = [sys.executable, "-m", "matthan", "ward", "listen", "--ward", WARD, "--broker", broker.url]
        argv += ["--client-id", "ward-test", "--state", str(tmp_path / "station.db"), *extra]
        before = self.readiness()
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        # Its readiness signal: logged once the broker has acknowledged every subscription, so
        # what is published from here on reaches it.
        self.wait_ready(before + 1)

    def readiness(self) -> int:
        return self.err.read_text().count("station ready") if self.err.exists() else 0

    def wait_ready(self, count: int, timeout: float = 30) -> None:
        wait_for(lambda: self.readiness() >= count, timeout, f"the station's readiness #{count}")

    def lines(self) -> list[str]:
        return [ln for ln in self.out.read_text().splitlines() if ln.strip()]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(15)


def test_prints_one_line_per_alert_deduped_and_saves_snapshots(tmp_path: Path, broker: Mosquitto) -> None:
    snaps = tmp_path / "snaps"
    station = Station(
        tmp_path, broker, "--snapshots", str(snaps), "--console-url", "http://console.test:8000/"
    )
    device = Probe(broker.port, [], client_id=DEVICE)
    try:
        ok, jpeg = cv2.imencode(".jpg", np.full((40, 60, 3), 200, np.uint8))
        assert ok
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-1", object_count=7, **PLACE))
        device.publish(device_topic(Kind.SNAPSHOT, WARD, DEVICE, "ev-1"), jpeg.tobytes())
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-1", object_count=7))  # resent
        device.publish(
            device_topic(Kind.ALERT, WARD, DEVICE),
            _alert(
                "ev-2", zone=None, type="camera_offline", category="security_order", rule="camera_offline"
            ),
        )
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), b'{"v": 1, "event_id": "broken"}')
        device.publish(device_topic(Kind.ALERT, "other-ward", DEVICE), _alert("ev-3", ward="other-ward"))
        state = AlertState(
            event_id="ev-1", ward=WARD, device_id=DEVICE, state="acknowledged", by="officer-12",
            note="đã cử tổ tuần tra", at=utc_now(),
        )  # fmt: skip
        device.publish(ward_topic(Kind.ALERT_STATE, WARD), encode(state))
        wait_for(lambda: len(station.lines()) >= 3, 10, "three lines")
        time.sleep(0.5)
        lines = station.lines()
        assert len(lines) == 3, lines
        first, second, third = lines
        # Local time with its zone (the golden alert starts 08:30:12Z), the rule in words, the count,
        # the site, the alert's page.
        assert first.startswith("2026-11-24 15:30:12 +07 (Asia/Ho_Chi_Minh)"), first
        for part in (
            "Tụ tập đông người",
            "(vỉa hè cửa phường)",
            "×7",
            "Ngã tư Bến Thành, Lê Lợi, phường Bến Thành, Quận 1 (10.77250, 106.69800)",
            "http://console.test:8000/console/alerts/ev-1",
        ):
            assert part in first, (part, first)
        assert "Camera mất tín hiệu" in second and f"{DEVICE}/{BASE.camera_id}" in second
        assert "đang xử lý (acknowledged) by officer-12" in third
        assert (
            "Tụ tập đông người (crowd) — Ngã tư Bến Thành" in third and 'note: "đã cử tổ tuần tra"' in third
        )
        assert third.endswith("http://console.test:8000/console/alerts/ev-1")
        assert (snaps / "ev-1.jpg").read_bytes() == jpeg.tobytes()
        assert "ignored malformed message" in station.err.read_text()
    finally:
        device.stop()
        assert station.stop() == 0
    assert "Traceback" not in station.err.read_text()


def test_the_station_confirms_delivery_to_the_cloud_once_per_alert(tmp_path: Path, broker: Mosquitto) -> None:
    cloud = Probe(broker.port, [ward_topic(Kind.ALERT_ACTION, WARD)], client_id="cloud-stand-in")
    station = Station(tmp_path, broker)
    device = Probe(broker.port, [], client_id=DEVICE)
    try:
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-7"))
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-7"))  # resent by the device
        topic = ward_topic(Kind.ALERT_ACTION, WARD)
        wait_for(lambda: cloud.on(topic), 10, "a delivery confirmation")
        action = decode(AlertAction, cloud.on(topic)[0])
        assert (action.event_id, action.action, action.by) == ("ev-7", "deliver", "ward-test")
        # The cloud says it moved on: the station stops confirming.
        state = AlertState(event_id="ev-7", ward=WARD, device_id=DEVICE, state="delivered", at=utc_now())
        device.publish(ward_topic(Kind.ALERT_STATE, WARD), encode(state))
        time.sleep(1.5)
        assert len(cloud.on(topic)) == 1  # one alert shown twice is confirmed once
    finally:
        device.stop()
        cloud.stop()
        assert station.stop() == 0


def test_a_read_only_screen_confirms_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    cloud = Probe(broker.port, [ward_topic(Kind.ALERT_ACTION, WARD)], client_id="cloud-stand-in")
    station = Station(tmp_path, broker, "--no-confirm")
    device = Probe(broker.port, [], client_id=DEVICE)
    try:
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-8"))
        wait_for(lambda: station.lines(), 10, "the alert on screen")
        time.sleep(2.0)
        assert cloud.on(ward_topic(Kind.ALERT_ACTION, WARD)) == []
    finally:
        device.stop()
        cloud.stop()
        assert station.stop() == 0


def test_json_lines_and_survives_a_broker_restart(tmp_path: Path, broker: Mosquitto) -> None:
    station = Station(tmp_path, broker, "--json")
    try:
        device = Probe(broker.port, [], client_id=DEVICE)
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-a"))
        device.stop()
        wait_for(lambda: len(station.lines()) == 1, 10, "first alert")
        broker.stop()
        time.sleep(1.0)
        broker.start()
        # Published before the station is back: its persistent session holds it.
        station.wait_ready(2)
        device = Probe(broker.port, [], client_id=DEVICE)
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-b"))
        device.stop()
        wait_for(lambda: len(station.lines()) == 2, 15, "alert after the broker restart")
        got = [decode(Alert, json.dumps(json.loads(ln)["alert"])) for ln in station.lines()]
        assert [a.event_id for a in got] == ["ev-a", "ev-b"]
    finally:
        assert station.stop() == 0


def test_alerts_sent_while_the_station_is_down_wait_for_it(tmp_path: Path, broker: Mosquitto) -> None:
    station = Station(tmp_path, broker, "--json")
    assert station.stop() == 0
    device = Probe(broker.port, [], client_id=DEVICE)
    device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert("ev-offline"))
    device.stop()
    station = Station(tmp_path, broker, "--json")
    try:
        wait_for(lambda: station.lines(), 10, "the queued alert")
        assert json.loads(station.lines()[0])["event_id"] == "ev-offline"
    finally:
        station.stop()


def test_an_alert_it_cannot_handle_is_skipped_and_the_station_goes_on(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """A time whose UTC value is past year 9999 once crashed the station with OverflowError."""
    station = Station(tmp_path, broker, "--json")
    device = Probe(broker.port, [], client_id=DEVICE)
    try:
        topic = device_topic(Kind.ALERT, WARD, DEVICE)
        hostile = json.loads(_alert("ev-bad"))
        hostile["started_at"] = "9999-12-31T23:59:59-05:00"
        device.publish(topic, json.dumps(hostile).encode())
        device.publish(topic, _alert("ev-after"))
        wait_for(lambda: station.lines(), 10, "the alert after the hostile one")
        assert [json.loads(ln)["event_id"] for ln in station.lines()] == ["ev-after"]
        assert station.proc.poll() is None
    finally:
        device.stop()
        assert station.stop() == 0
    err = station.err.read_text()
    assert "Traceback" not in err
    # Skipped (any exception) or refused by the contract (once it bounds times): logged once.
    assert err.count("message skipped") + err.count("ignored malformed message") == 1, err
    with sqlite3.connect(tmp_path / "station.db") as db:
        (quarantined,) = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()
    assert quarantined == 1


def test_a_restarted_station_shows_nothing_twice_and_asks_the_cloud_to_catch_up(
    tmp_path: Path, broker: Mosquitto
) -> None:
    cloud = Probe(
        broker.port,
        [ward_topic(Kind.ALERT_ACTION, WARD), ward_topic(Kind.STATION_SYNC, WARD)],
        client_id="cloud-stand-in",
    )
    station = Station(tmp_path, broker, "--json")
    try:
        # After its SUBACKs it asks the cloud for what it has not confirmed.
        wait_for(lambda: cloud.on(ward_topic(Kind.STATION_SYNC, WARD)), 10, "the station's sync")
        assert decode(StationSync, cloud.on(ward_topic(Kind.STATION_SYNC, WARD))[0]).station == "ward-test"
        cloud.publish(ward_topic(Kind.STATION_ALERT, WARD), _alert("ev-r"))  # the cloud's copy
        wait_for(lambda: station.lines(), 10, "the cloud's copy on screen")
        assert station.stop() == 0
        station = Station(tmp_path, broker, "--json")  # the same state file
        wait_for(lambda: len(cloud.on(ward_topic(Kind.STATION_SYNC, WARD))) == 2, 10, "a second sync")
        actions = ward_topic(Kind.ALERT_ACTION, WARD)
        confirmed = len(cloud.on(actions))
        # The cloud still has no confirmation (it sends copies only then): shown before, so not
        # shown again, but confirmed again.
        cloud.publish(ward_topic(Kind.STATION_ALERT, WARD), _alert("ev-r"))
        cloud.publish(ward_topic(Kind.STATION_ALERT, WARD), _alert("ev-s"))
        wait_for(lambda: len(station.lines()) == 2, 10, "the next alert")
        wait_for(lambda: len(cloud.on(actions)) >= confirmed + 2, 10, "confirmations of both")
        assert [json.loads(ln)["event_id"] for ln in station.lines()] == ["ev-r", "ev-s"]
        assert {decode(AlertAction, p).event_id for p in cloud.on(actions)} == {"ev-r", "ev-s"}
    finally:
        cloud.stop()
        assert station.stop() == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ward", "Ben Nghe"], "is not an id"),
        (["--ward", "w1", "--broker", "http://x"], "--broker"),
        (["--ward", "w1", "--broker", "mqtts://x:8883", "--ca", "/nonexistent/ca.pem"], "no such file"),
        (["--ward", "w1", "--snapshots", "/proc/forbidden"], "snapshots folder"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "matthan", "ward", "listen", *argv], capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
