"""A camera with two streams: detection on the 360p sub-stream, clips from the 1080p main stream.

Both streams are made from the same real footage (vtest), so a frame the detector saw can be
found again in the recorded clip: that is how the time offset between the two is measured.
"""

import json
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from device.camera_worker import CameraWorker
from device.clip_cut import probe_media
from device.events import DetectedEvent
from device.frames import Frame
from device.health import CameraView, camera_health
from device.media import DeviceMedia
from device.offline import OfflineWatch
from matthan.evidence import sha256_hex, verify_manifest
from matthan.hashing import sha256_file
from matthan_wire.config import CameraConfig, DeviceConfig, ModelConfig
from provisioning import pki
from tests.device.conftest import DEVICE
from tests.support.camera_server import TsCamera
from tests.support.net import wait_until

SECONDS = 12
WALKWAY = [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]]


@pytest.fixture(scope="module")
def streams(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sub, main): the first seconds of vtest at 480×360 (by copy) and the same scaled to 1080p,
    H.264 with a keyframe every 2 s as a camera's main stream."""
    out = tmp_path_factory.mktemp("streams")
    src = assets_dir / "video/vtest_480x360.mp4"
    sub, main = out / "sub-360p.mp4", out / "main-1080p.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(src), "-t", str(SECONDS), "-an", "-c", "copy", str(sub)],
        check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(sub), "-vf", "scale=1920:1080", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "20", "-pix_fmt", "yuv420p", str(main)],
        check=True, timeout=120,
    )  # fmt: skip
    return sub, main


def config(
    tmp_path: Path, detect: str, record: str, broker: dict[str, str] | None = None, **camera: Any
) -> DeviceConfig:
    cam = {
        "id": "cam-1",
        "inputs": [{"source": detect, "roles": ["detect"]}, {"source": record, "roles": ["record"]}],
        "detect": {"fps": 5},
        "record": {"segment_s": 2, "pre_capture_s": 1, "post_capture_s": 1},
        "zones": [{"name": "walkway", "polygon": WALKWAY,
                   "rules": [{"type": "intrusion", "labels": ["person"], "min_duration_s": 1}]}],
        **camera,
    }  # fmt: skip
    return DeviceConfig.model_validate(
        {
            "device": DEVICE.model_dump(),
            "broker": broker or {"url": "mqtt://127.0.0.1:1883"},
            "storage": {"path": str(tmp_path / "data"), "budget_mb": 64},
            "cameras": [cam],
        }
    )


class Camera:
    """One camera as the agent runs it: the worker on the detect input, the media on the record input."""

    def __init__(self, cfg: DeviceConfig, model: ModelConfig, on_frame: Callable[..., None] | None = None):
        self.cfg = cfg
        self.cam: CameraConfig = cfg.cameras[0]
        self.events: list[DetectedEvent] = []
        self.media = DeviceMedia(cfg, paced=True)
        self.lock = threading.Lock()
        seq = iter(range(1, 1 << 30))
        self.worker = CameraWorker(
            cfg.device, self.cam, model, self.on_event, lambda: next(seq), paced=True, on_frame=on_frame
        )

    def on_event(self, event: DetectedEvent) -> None:
        with self.lock:
            self.events.append(event)
        self.media.clips.handle(event.alert, event.snapshot_jpeg)

    def start(self) -> "Camera":
        self.media.start()
        # As with a live camera, the main stream is being recorded when detection begins. (Two files
        # played by two players start when each opens its own; on a loaded machine ffmpeg may open
        # its copy seconds late, and the event's first moment would then precede every segment.)
        wait_until(lambda: self.media.recording_up(self.cam.id) is True, timeout=60, what="recording")
        self.worker.start()
        return self

    def stop(self) -> None:
        self.worker.stop()
        self.media.stop()


def best_match(clip: Path, image: np.ndarray) -> tuple[int, float]:
    """The clip frame (index, fps) that looks most like `image` once scaled to its size."""
    cap = cv2.VideoCapture(str(clip))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    h, w = image.shape[:2]
    target = image.astype(np.int16)
    best, best_err, i = -1, float("inf"), 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)
        err = float(np.abs(small - target).mean())
        if err < best_err:
            best, best_err = i, err
        i += 1
    cap.release()
    return best, fps


def test_detect_on_the_sub_stream_clip_from_the_main_stream(
    streams: tuple[Path, Path], model_config: ModelConfig, tmp_path: Path
) -> None:
    sub, main = streams
    frames: dict[datetime, np.ndarray] = {}
    shapes: set[tuple[int, ...]] = set()

    def seen(frame: Frame, *_: object) -> None:
        frames[frame.ts] = frame.image
        shapes.add(frame.image.shape)

    cam = Camera(config(tmp_path, str(sub), str(main)), model_config, on_frame=seen).start()
    try:
        assert cam.worker.wait_finished(SECONDS * 4), "the sub-stream did not play to its end"
        assert cam.media.clips.wait_idle(60), "the clip was not cut"
        stats = cam.worker.stats()
        crops = [e.alert.event_id for e in cam.events if cam.media.uploads.get(e.alert.event_id, "crop")]
    finally:
        cam.stop()
    # Detection ran on the 360p sub-stream, sampled at the configured 5 fps (the file has 10); on a
    # loaded machine the detector may skip a sampled frame (counted as dropped), never fall behind.
    assert shapes == {(360, 480, 3)}
    sampled = stats.frames_processed + stats.frames_dropped
    assert SECONDS * 5 * 0.9 <= sampled <= SECONDS * 5 + 1 and stats.frames_in >= SECONDS * 10 * 0.9
    starts = [e for e in cam.events if e.alert.phase == "start"]
    assert starts, "no intrusion on the walkway"
    first = starts[0].alert
    media = cam.cfg.storage.path + "/media"
    clip = Path(media) / f"{first.event_id}.mp4"
    side = json.loads((Path(media) / f"{first.event_id}.json").read_text())
    # The evidence is the 1080p main stream, by copy.
    info = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "csv=p=0", str(clip)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert info == "1920,1080"
    duration, codec = probe_media(clip)
    assert codec == "h264" and duration >= 2.0
    # The crop of the violating object is cut from the 1080p picture: three times the detail.
    crop = cv2.imread(str(Path(media) / f"{first.event_id}-crop.jpg"))
    assert crop is not None and first.bbox is not None
    x1, y1, x2, y2 = first.bbox
    assert crop.shape[0] >= 1080 * (y2 - y1) and crop.shape[1] >= 1920 * (x2 - x1)
    assert first.event_id in crops  # queued for upload
    # Time alignment: the frame the rule fired on, found in the clip, at clip start + its position.
    # (The alert carries milliseconds; the frame's stamp has microseconds.)
    at = min(frames, key=lambda ts: abs((ts - first.started_at).total_seconds()))
    assert abs((at - first.started_at).total_seconds()) < 0.001
    index, fps = best_match(clip, frames[at])
    covered = datetime.fromisoformat(side["covered_start"].replace("Z", "+00:00"))
    offset = (covered.timestamp() + index / fps) - first.started_at.timestamp()
    print(f"stream offset: record − detect = {offset:+.3f} s (clip frame {index}, segment_s 2)")
    assert abs(offset) < 2.0, f"the clip is {offset:+.2f} s off the detection"


def test_the_crop_is_in_the_manifest_signed_with_the_clip(
    streams: tuple[Path, Path], model_config: ModelConfig, tmp_path: Path
) -> None:
    """The crop is the picture where a face or a plate is readable: the manifest the device signs
    with the clip names it, so an altered crop is caught like an altered snapshot."""
    sub, main = streams
    ca = pki.Authority(pki.init_ca(tmp_path / "ca"))
    key = pki.new_key()
    key_file, cert_file = tmp_path / "device.key", tmp_path / "device.pem"
    key_file.write_bytes(pki.key_pem(key))
    cert_file.write_bytes(pki.cert_pem(ca.sign_csr(pki.make_csr(key, DEVICE.id), DEVICE.id)))
    broker = {"url": "mqtt://127.0.0.1:1883", "key": str(key_file), "cert": str(cert_file)}
    cam = Camera(config(tmp_path, str(sub), str(main), broker), model_config).start()
    try:
        assert cam.worker.wait_finished(SECONDS * 4), "the sub-stream did not play to its end"
        assert cam.media.clips.wait_idle(90), "the clips were not cut"
        stats = cam.media.clips.stats()
    finally:
        cam.stop()
    assert stats.crops_saved >= 1 and stats.manifests_failed == 0, stats
    media = Path(cam.cfg.storage.path) / "media"
    ended = [e.alert.event_id for e in cam.events if e.alert.phase == "end"]
    assert ended, "no event ended"
    suffixes = {"clip": ".mp4", "snapshot": ".jpg", "sidecar": ".json", "crop": "-crop.jpg"}
    signed_crops: list[tuple[str, Path, dict[str, str | None]]] = []
    for event_id in ended:
        token = (media / f"{event_id}.jws").read_text()
        files = {kind: media / f"{event_id}{suffix}" for kind, suffix in suffixes.items()}
        digests: dict[str, str | None] = {k: sha256_file(p) for k, p in files.items() if p.is_file()}
        verdict = verify_manifest(token, ca.cert, None, digests, expected_device=DEVICE.id, require_crl=False)
        assert verdict.valid, (event_id, verdict.problems)
        assert verdict.manifest is not None
        # Every crop that was cut is named: none came after its manifest was signed.
        assert ("crop" in verdict.manifest.files) == files["crop"].is_file(), event_id
        if files["crop"].is_file():
            signed = verdict.manifest.files["crop"]
            assert (signed.sha256, signed.size) == (digests["crop"], files["crop"].stat().st_size)
            signed_crops.append((token, files["crop"], digests))
    assert len(signed_crops) == stats.crops_saved
    token, crop, digests = signed_crops[0]
    altered = bytearray(crop.read_bytes())
    altered[len(altered) // 2] ^= 0x01
    verdict = verify_manifest(
        token, ca.cert, None, {**digests, "crop": sha256_hex(bytes(altered))}, require_crl=False
    )
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith("crop: SHA-256"), verdict.problems


def test_losing_the_record_stream_keeps_detection_and_says_so(
    streams: tuple[Path, Path], model_config: ModelConfig, tmp_path: Path
) -> None:
    sub, main = streams
    detect_cam, record_cam = TsCamera(sub).start(), TsCamera(main).start()
    cam = Camera(config(tmp_path, detect_cam.url, record_cam.url), model_config).start()
    try:
        wait_until(lambda: cam.media.recording_up("cam-1") is True, timeout=30, what="recording")
        wait_until(lambda: cam.worker.stats().frames_processed >= 10, timeout=30, what="detection")
        record_cam.stop()
        wait_until(lambda: cam.media.recording_up("cam-1") is False, timeout=30, what="recording down")
        before = cam.worker.stats().frames_processed
        wait_until(
            lambda: cam.worker.stats().frames_processed >= before + 10, timeout=30, what="detection going on"
        )
        stats = cam.worker.stats()
        health = camera_health(CameraView("cam-1", stats, 30.0, cam.media.recording_up("cam-1")))
        assert health.stream_up is True and health.recording is False and health.fps_detect > 0
        # First the recorder sees its ffmpeg end ("eof"); its reconnect attempt then names the camera.
        wait_until(
            lambda: "127.0.0.1" in (cam.media.recording.states()["cam-1"].last_error or ""),
            timeout=30,
            what="the recorder's error naming the camera's address",
        )
    finally:
        cam.stop()
        detect_cam.stop()


def test_losing_the_detect_stream_raises_camera_offline(
    streams: tuple[Path, Path], model_config: ModelConfig, tmp_path: Path
) -> None:
    sub, main = streams
    detect_cam, record_cam = TsCamera(sub).start(), TsCamera(main).start()
    cfg = config(tmp_path, detect_cam.url, record_cam.url, offline_debounce_s=0)
    cam = Camera(cfg, model_config).start()
    offline: list[DetectedEvent] = []
    seq = iter(range(1000, 1 << 30))
    watch = OfflineWatch(cfg.device, lambda: next(seq), offline.append)
    try:
        wait_until(lambda: cam.worker.stats().frames_processed >= 10, timeout=30, what="detection")
        wait_until(lambda: cam.media.recording_up("cam-1") is True, timeout=30, what="recording")
        watch.check(cam.cam, cam.worker.stats(), time.monotonic())
        assert offline == []
        detect_cam.stop()

        def down() -> bool:
            watch.check(cam.cam, cam.worker.stats(), time.monotonic())
            return bool(offline)

        wait_until(down, timeout=30, what="camera_offline")
        a = offline[0].alert
        assert a.type == "camera_offline" and a.phase == "start" and a.camera_id == "cam-1"
        assert cam.media.recording_up("cam-1") is True  # the main stream is still recorded
    finally:
        cam.stop()
        record_cam.stop()


def test_config_roles() -> None:
    base = {"id": "cam-1", "detect": {"fps": 5}}
    one = CameraConfig.model_validate({**base, "source": "rtsp://cam/main"})
    assert one.detect_source == one.record_source == "rtsp://cam/main" and one.sources == ["rtsp://cam/main"]
    both = CameraConfig.model_validate(
        {**base, "inputs": [{"source": "rtsp://cam/x", "roles": ["detect", "record"]}]}
    )
    assert both.detect_source == both.record_source == "rtsp://cam/x"
    two = CameraConfig.model_validate(
        {**base, "inputs": [{"source": "rtsp://u:p@cam/sub", "roles": ["detect"]},
                            {"source": "rtsp://u:p@cam/main", "roles": ["record"]}]}
    )  # fmt: skip
    assert (two.detect_source, two.record_source) == ("rtsp://u:p@cam/sub", "rtsp://u:p@cam/main")
    hidden = two.with_sources(lambda s: s.replace("u:p@", "u:***@"))
    assert hidden.sources == ["rtsp://u:***@cam/sub", "rtsp://u:***@cam/main"]

    def inputs(*pairs: tuple[str, list[str]]) -> dict[str, Any]:
        return {**base, "inputs": [{"source": src, "roles": roles} for src, roles in pairs]}

    bad: list[tuple[dict[str, Any], str]] = [
        ({**base}, "either `source`"),
        ({**inputs(("b.mp4", ["detect", "record"])), "source": "a.mp4"}, "not both"),
        (inputs(("rtsp://cam/sub", ["detect"])), "role 'record'"),
        (inputs(("a", ["detect"]), ("b", ["detect", "record"])), "role 'detect'"),
        (inputs(("a", ["detect", "detect"])), "listed twice"),
        (inputs(("/dev/video0", ["detect"]), ("b", ["record"])), "opened once only"),
        (inputs(("a", ["detect"]), ("a", ["record"])), "same source"),
    ]
    for data, message in bad:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            CameraConfig.model_validate(data)
