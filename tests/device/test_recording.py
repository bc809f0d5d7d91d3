"""Recording follows the configuration: a recorder per recorded camera, restarted on a change that
concerns it, holds of open events carried over to the new one."""

from datetime import UTC, datetime
from pathlib import Path

from device.recording import Recording
from matthan_wire.config import CameraConfig, StorageConfig
from tests.support.net import wait_until

ONE_BY_ONE = "video/one-by-one-person-detection.mp4"


def camera(source: Path | str) -> CameraConfig:
    rec = {"segment_s": 1.0, "pre_capture_s": 1.0, "post_capture_s": 1.0}
    return CameraConfig(id="cam-1", source=str(source), loop=True, record=rec)  # type: ignore[arg-type]


def test_recording_follows_config_changes(assets_dir: Path, tmp_path: Path) -> None:
    storage = StorageConfig(path=str(tmp_path / "data"), cache_path=str(tmp_path / "tmpfs"))
    a = camera(assets_dir / ONE_BY_ONE)
    b = a.model_copy(update={"id": "cam-2"})
    pi = a.model_copy(update={"id": "cam-pi", "source": "picamera2:0"})
    off = a.model_copy(update={"id": "cam-off", "record": a.record.model_copy(update={"enabled": False})})
    recording = Recording(storage)
    try:
        recording.apply([a, b, pi, off])  # the Pi camera waits for frames from the capture
        states = recording.states()
        assert set(states) == {"cam-1", "cam-2", "cam-pi"} and recording.get("cam-pi").frames  # type: ignore[union-attr]
        wait_until(
            lambda: all(s.recording for c, s in recording.states().items() if c != "cam-pi"),
            timeout=15,
            what="both up",
        )
        wait_until(lambda: list((tmp_path / "tmpfs" / "cam-1").glob("cam-1-*.ts")), timeout=10, what="tmpfs")
        first_a, first_b = recording.get("cam-1"), recording.get("cam-2")
        assert first_a is not None and first_b is not None
        since = datetime.now(UTC)
        first_a.hold("ev-1", since)

        # A name change on cam-1 keeps its recording; cam-2's segment length changes: a new recorder.
        a2 = a.model_copy(update={"name": "renamed"})
        b2 = b.model_copy(update={"record": b.record.model_copy(update={"segment_s": 2.0})})
        recording.apply([a2, b2])
        assert recording.get("cam-1") is first_a and first_a.camera.name == "renamed"
        assert recording.get("cam-2") is not first_b and recording.get("cam-2").segment_s == 2.0  # type: ignore[union-attr]
        assert first_b.pid is None  # the old ffmpeg is gone

        # cam-1's source changes while an event is open: the new recorder keeps the event's hold.
        a3 = a2.model_copy(update={"source": str(assets_dir / "video/car-detection.mp4")})
        recording.apply([a3, b2])
        moved = recording.get("cam-1")
        assert moved is not None and moved is not first_a and moved.holds() == {"ev-1": since}
        assert recording.cache_bytes() > 0
        recording.apply([])
        assert recording.states() == {}
    finally:
        recording.stop()
