"""Capture: file timestamps and sampling, pacing, looping, unreadable sources, the Pi camera adapter."""

import itertools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.capture import Capture, SourceError, open_source, redact
from device.errors import DeviceError
from device.picamera import PiCameraSource

T0 = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)


def test_file_frames_are_sampled_and_stamped_by_position(video) -> None:  # type: ignore[no-untyped-def]
    # traffic_frames: 20 frames at 30 fps; sampled at 10 fps → every 3rd frame.
    cap = Capture(str(video("traffic_frames.mp4")), 10.0, threading.Event(), paced=False, start_time=T0)
    frames = list(cap.frames())
    assert [f.index for f in frames] == list(range(7))
    assert [round((f.ts - T0).total_seconds(), 4) for f in frames] == [
        round(i * 3 / 30.0, 4) for i in range(7)
    ]
    assert frames[0].image.shape == (540, 960, 3) and frames[0].image.dtype == np.uint8
    assert cap.counters.frames_in == 20 and cap.counters.expected_fps == 30.0
    assert not cap.counters.stream_up  # the file ended


def test_sampling_faster_than_the_file_gives_every_frame(video) -> None:  # type: ignore[no-untyped-def]
    cap = Capture(str(video("traffic_frames.mp4")), 60.0, threading.Event(), paced=False, start_time=T0)
    assert len(list(cap.frames())) == 20


def test_a_looping_file_continues_its_clock(video) -> None:  # type: ignore[no-untyped-def]
    stop = threading.Event()
    cap = Capture(str(video("traffic_frames.mp4")), 30.0, stop, paced=False, loop=True, start_time=T0)
    frames = []
    for f in cap.frames():
        frames.append(f)
        if len(frames) == 45:
            stop.set()
    assert [f.index for f in frames] == list(range(45))
    offsets = [(f.ts - T0).total_seconds() for f in frames]
    assert offsets == sorted(offsets) and offsets[20] == pytest.approx(20 / 30.0)
    assert np.array_equal(frames[0].image, frames[20].image)  # the second pass starts over


def test_paced_playback_takes_the_files_own_time(video) -> None:  # type: ignore[no-untyped-def]
    cap = Capture(str(video("traffic_frames.mp4")), 30.0, threading.Event(), paced=True)
    began = time.monotonic()
    before = datetime.now(UTC)
    frames = list(cap.frames())
    took = time.monotonic() - began
    assert len(frames) == 20
    assert 0.55 <= took < 2.0  # 20 frames at 30 fps: 0.63 s of video
    # Without --start-time the file starts now.
    assert abs((frames[0].ts - before).total_seconds()) < 1.0


def test_unreadable_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"video file .*nothing.mp4: no such file"):
        open_source(str(tmp_path / "nothing.mp4"))
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(SourceError, match=r"video file .*notes.mp4: cannot open it \(not a video"):
        open_source(str(text))
    with pytest.raises(SourceError, match="cannot open video source /dev/video97"):
        open_source("/dev/video97")
    with pytest.raises(SourceError, match="cannot open"):
        # A USB camera that is not there is a setup mistake, not something to retry forever.
        list(Capture("/dev/video97", 5.0, threading.Event()).frames())


def test_passwords_stay_out_of_logs() -> None:
    assert redact("rtsp://admin:s3cret@10.1.2.3/stream1") == "rtsp://admin:***@10.1.2.3/stream1"
    assert redact("/videos/a.mp4") == "/videos/a.mp4"
    assert redact("http://cam.local/snap@2x/stream") == "http://cam.local/snap@2x/stream"
    assert redact("rtsp://admin:p@ss@10.1.2.3:554/s") == "rtsp://admin:***@10.1.2.3:554/s"


# The Pi camera: the one piece of hardware that cannot exist here, so a stand-in object -----------
class _StandInCamera:
    """Behaves as picamera2.Picamera2 does for the calls the adapter makes."""

    def __init__(self, index: int, fail_after: int = 1000) -> None:
        self.index = index
        self.calls: list[str] = []
        self.config: dict[str, Any] = {}
        self.fail_after = fail_after

    def create_video_configuration(self, main: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create_video_configuration")
        return {"main": main, "controls": {"FrameDurationLimits": (33333, 33333)}}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, name: str) -> np.ndarray:
        self.fail_after -= 1
        if self.fail_after < 0:
            raise RuntimeError("camera went away")
        w, h = self.config["main"]["size"]
        frame = np.zeros((h, w, 4), np.uint8)  # XRGB8888-like: the adapter keeps three channels
        frame[:, :, 2] = 255
        return frame

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


class _StandInModule:
    def __init__(self, **kw: Any) -> None:
        self.made: list[_StandInCamera] = []
        self.kw = kw

    def Picamera2(self, index: int) -> _StandInCamera:  # noqa: N802 - picamera2's own name
        if index > 0:
            raise IndexError("list index out of range")  # what picamera2 raises for a missing camera
        cam = _StandInCamera(index, **self.kw)
        self.made.append(cam)
        return cam


def test_pi_camera_adapter_opens_reads_and_closes() -> None:
    module = _StandInModule(fail_after=3)
    src = PiCameraSource.open("picamera2:0", module=module)
    cam = module.made[0]
    assert cam.calls == ["create_video_configuration", "configure", "start"]
    assert cam.config["main"] == {"size": (1280, 720), "format": "BGR888"}
    assert src.live and src.fps == pytest.approx(30.0, abs=0.01)
    assert src.grab()
    image = src.retrieve()
    assert image is not None and image.shape == (720, 1280, 3) and image[0, 0, 2] == 255
    assert src.grab() and src.grab()
    assert not src.grab()  # the camera failed: the capture loop reopens it
    src.close()
    assert cam.calls[-2:] == ["stop", "close"]


def test_pi_camera_errors_are_clear() -> None:
    with pytest.raises(DeviceError, match="cannot start the Pi camera"):
        PiCameraSource.open("picamera2:1", module=_StandInModule())
    with pytest.raises(DeviceError, match="expected picamera2:N"):
        PiCameraSource.open("picamera2:front", module=_StandInModule())
    # picamera2 is not installed on this machine: the lazy import says what to do.
    with pytest.raises(DeviceError, match="picamera2 is not installed"):
        open_source("picamera2:0")


def test_hwaccel_auto_without_a_gpu_decodes_in_software_and_says_so(
    video,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level("INFO", logger="device.capture")
    capture = Capture(str(video("vtest_480x360.mp4")), 5.0, threading.Event(), paced=False,
                      hwaccel="auto", camera_id="cam-1", loop=True)  # fmt: skip
    frames = list(itertools.islice(capture.frames(), 3))
    assert len(frames) == 3 and frames[0].image.shape == (360, 480, 3)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("video decode")]
    assert len(lines) == 1 and "camera=cam-1" in lines[0] and "hwaccel=auto" in lines[0]
    if not Path("/dev/dri").exists():  # no GPU: software (a box with VAAPI names it here)
        assert "decoder=software" in lines[0]
    source = open_source(str(video("vtest_480x360.mp4")), "off")
    assert getattr(source, "decoder", None) == "software"
    source.close()
