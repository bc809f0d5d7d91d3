"""camera_offline: a stream lost past its debounce is an alert, and its return ends it."""

import http.server
import threading
from functools import partial
from pathlib import Path

from device.agent import Agent
from device.camera_worker import CameraStats
from device.events import DetectedEvent
from device.offline import OfflineWatch
from matthan_wire import Alert, Kind, decode
from matthan_wire.config import CameraConfig, DeviceIdentity
from matthan_wire.topics import device_filter
from tests.device.test_config_sync import _config
from tests.support.broker import Mosquitto
from tests.support.net import free_port
from tests.support.receipts import Probe, wait_for


def _stats(up: bool, age: float | None = 0.1) -> CameraStats:
    return CameraStats(
        stream_up=up,
        fps_in=5.0 if up else 0.0,
        fps_detect=5.0 if up else 0.0,
        detect_ms=7.0,
        last_frame_age_s=age,
        expected_fps=5.0,
        reconnects_1h=0,
        stalls_1h=0,
        detector_runs=0,
        detector_runs_saved=0,
        frames_in=0,
        frames_dropped=0,
    )


def test_debounce_start_and_end() -> None:
    events: list[DetectedEvent] = []
    seq = iter(range(100))
    watch = OfflineWatch(DeviceIdentity(id="d1", ward="w1"), lambda: next(seq), events.append)
    cam = CameraConfig(id="cam-1", source="rtsp://x/y", offline_debounce_s=60)
    watch.check(cam, _stats(False), now=0.0)
    watch.check(cam, _stats(False), now=59.0)
    watch.check(cam, _stats(True), now=59.5)  # a blip shorter than the debounce raises nothing
    watch.check(cam, _stats(False), now=100.0)
    assert events == []
    watch.check(cam, _stats(True, age=30.0), now=130.0)  # "up" but frozen for 30 s counts as down
    watch.check(cam, _stats(False), now=160.0)
    [start] = [e.alert for e in events]
    assert (start.type, start.category, start.phase, start.zone, start.camera_id) == (
        "camera_offline",
        "security_order",
        "start",
        None,
        "cam-1",
    )
    watch.check(cam, _stats(False), now=300.0)
    assert len(events) == 1, "one alert for one outage"
    watch.check(cam, _stats(True), now=301.0)
    end = events[-1].alert
    assert end.phase == "end" and end.event_id == start.event_id and end.ended_at is not None
    assert end.seq > start.seq
    assert watch.open_alerts() == {}


def test_removed_camera_closes_its_alert() -> None:
    events: list[DetectedEvent] = []
    watch = OfflineWatch(DeviceIdentity(id="d1", ward="w1"), lambda: 1, events.append)
    cam = CameraConfig(id="cam-1", source="rtsp://x/y", offline_debounce_s=0)
    watch.check(cam, None, now=0.0)
    watch.forget("cam-1")
    assert [e.alert.phase for e in events] == ["start", "end"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_lost_stream_is_an_alert_and_its_return_ends_it(
    tmp_path: Path, assets_dir: Path, broker: Mosquitto
) -> None:
    """A camera on an HTTP stream that is not there raises camera_offline; when the server comes up,
    the stream returns and the event ends."""
    http_port = free_port()
    source = f"http://127.0.0.1:{http_port}/vtest_480x360.mp4"
    cfg = _config(tmp_path, assets_dir, broker.port, source=source, offline_debounce_s=1.0, zones=[])
    probe = Probe(broker.port, [device_filter(Kind.ALERT), device_filter(Kind.EVENT)])
    agent = Agent(cfg)
    server: http.server.ThreadingHTTPServer | None = None
    agent.start()
    try:
        wait_for(lambda: probe.messages, 20, "camera_offline start")
        start = decode(Alert, probe.messages[0][1])
        assert (start.type, start.phase, start.camera_id) == ("camera_offline", "start", "rex-north")
        handler = partial(_Quiet, directory=str(assets_dir / "video"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        # No receipts here, so the start may be resent (at least once); wait for the end itself.
        def ends() -> list[Alert]:
            return [a for a in (decode(Alert, p) for _, p in probe.messages) if a.phase == "end"]

        wait_for(ends, 60, "camera_offline end")
        assert ends()[0].event_id == start.event_id
    finally:
        agent.stop()
        probe.stop()
        if server is not None:
            server.shutdown()
