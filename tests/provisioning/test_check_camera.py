"""The checklist's camera item against real streams: a live MPEG-TS camera served by ffmpeg in
real time, and a two-input camera (a sub-stream decoded, a 1080p main stream only probed)."""

from pathlib import Path

from matthan_wire.config import DeviceConfig
from provisioning.check import Checklist
from tests.support.camera_server import TsCamera


def test_live_stream_camera_reports_the_rate_it_receives(assets_dir: Path) -> None:
    """A real live stream (ffmpeg serving MPEG-TS in real time to each client, as a camera does):
    the rate is measured after the decoder's buffered burst, so it matches the stream's 10 fps."""
    camera = TsCamera(assets_dir / "video" / "vtest_480x360.mp4").start()
    try:
        config = DeviceConfig.model_validate(
            {
                "device": {"id": "dev-1", "ward": "w1"},
                "broker": {"url": "mqtt://127.0.0.1:1"},
                "cameras": [{"id": "cam-1", "source": camera.url}],
            }
        )
        item = Checklist(config).camera("cam-1", camera.url)
    finally:
        camera.stop()
    # vtest has a keyframe about every 8 s: fine to detect on, a warning for recording by copy.
    assert item.status == "warn" and "keyframe not twice" in item.detail, item
    received = float(item.detail.split("received ")[1].split(" fps")[0])
    assert item.detail.startswith("480x360 h264, 10.0 fps") and 8.0 <= received <= 12.0, item.detail


def test_both_streams_of_a_two_input_camera_are_probed(assets_dir: Path, tmp_path: Path) -> None:
    """The sub-stream is decoded; the 1080p main stream only probed: codec, size, rate, keyframes."""
    import subprocess

    sub, main = tmp_path / "sub.mp4", tmp_path / "main.mp4"
    src = assets_dir / "video" / "vtest_480x360.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-t", "8", "-c", "copy", str(sub)], check=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(sub), "-vf", "scale=1920:1080", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "20", str(main)],
        check=True,
    )  # fmt: skip
    config = DeviceConfig.model_validate(
        {
            "device": {"id": "dev-1", "ward": "w1"},
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "cameras": [
                {"id": "cam-1", "record": {"segment_s": 2},
                 "inputs": [{"source": str(sub), "roles": ["detect"]},
                            {"source": str(main), "roles": ["record"]}]},
            ],
        }
    )  # fmt: skip
    checklist = Checklist(config)
    items = {name: fn() for name, fn in checklist.items() if name.startswith("camera")}
    assert list(items) == ["camera cam-1 detect", "camera cam-1 record"]
    detect, record = items["camera cam-1 detect"], items["camera cam-1 record"]
    assert detect.status == "pass" and detect.detail.startswith("480x360 h264, 10.0 fps"), detect
    assert record.status == "pass", record
    assert record.detail == "1920x1080 h264, 10.0 fps, keyframe every 2.0 s"
    assert checklist.state.frame is not None and checklist.state.frame.shape == (360, 480, 3)
