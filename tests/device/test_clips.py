"""Clips cut by copy from real recorded segments: coverage, checksum, sidecar, snapshot, queueing."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.clip_cut import ClipSidecar, probe_media
from device.clips import ClipMaker
from device.frames import Frame
from device.media import DeviceMedia
from device.recorder import Recorder
from device.upload_queue import UploadQueue
from matthan.hashing import sha256_file
from matthan_wire.config import CameraConfig, DeviceConfig, DeviceIdentity
from matthan_wire.payloads import Alert, ClipRef
from tests.support.net import wait_until
from tests.support.video import frame_hashes

ONE_BY_ONE = "video/one-by-one-person-detection.mp4"  # 10 fps, a keyframe every second
FPS = 10.0
LAG_S = 0.5  # how far behind real time a loaded machine may record
DEVICE = DeviceIdentity(id="dev-1", ward="ben-nghe")


def alert(
    event_id: str, phase: str, started: datetime, ended: datetime | None, pre: float, post: float
) -> Alert:
    clip = None
    if ended is not None:
        start, end = started - timedelta(seconds=pre), ended + timedelta(seconds=post)
        clip = ClipRef(name=f"{event_id}.mp4", start=start, end=end, duration_s=(end - start).total_seconds())
    return Alert(
        event_id=event_id, phase=phase, device_id=DEVICE.id, camera_id="cam-1", ward=DEVICE.ward,
        zone="plaza", rule="plaza.intrusion", type="intrusion", category="security_order",
        labels=["person"], object_count=1, score=0.8, bbox=[0.1, 0.2, 0.3, 0.6], started_at=started,
        ended_at=ended, seq=1, snapshot=None, clip=clip,
    )  # fmt: skip


def looping(assets_dir: Path) -> CameraConfig:
    """cam-1 on one-by-one, looped: 1 s segments, 1 s of pre- and post-capture."""
    return CameraConfig.model_validate(
        {"id": "cam-1", "source": str(assets_dir / ONE_BY_ONE), "loop": True,
         "record": {"segment_s": 1, "pre_capture_s": 1, "post_capture_s": 1}}
    )  # fmt: skip


def record_event(rec: Recorder, maker: ClipMaker, event_id: str, seconds: float) -> tuple[datetime, datetime]:
    """Once the recorder writes: an event of `seconds` (1 s pre- and post-capture) to the clip maker."""
    wait_until(lambda: rec.segments(), timeout=10, what="recording")
    time.sleep(1.5)
    started = datetime.now(UTC)
    maker.event_started(alert(event_id, "start", started, None, 1, 1), None)
    time.sleep(seconds)
    ended = datetime.now(UTC)
    maker.event_ended(alert(event_id, "end", started, ended, 1, 1))
    return started, ended


def snapshot_of(source: Path) -> bytes:
    """A JPEG with a box drawn, as the agent hands it over: from a real frame of the footage."""
    cap = cv2.VideoCapture(str(source))
    ok, frame = cap.read()
    cap.release()
    assert ok
    cv2.rectangle(frame, (40, 60), (200, 300), (0, 0, 255), 2)
    ok, buf = cv2.imencode(".jpg", frame)
    assert ok
    return bytes(buf)


@pytest.fixture
def parts(tmp_path: Path, assets_dir: Path) -> Iterator[tuple[Recorder, ClipMaker, UploadQueue]]:
    cam = looping(assets_dir)
    # A cache window far shorter than the event: only the event's hold keeps its beginning.
    rec = Recorder(cam, tmp_path / "cache", keep_s=1.0)
    uploads = UploadQueue(tmp_path / "media.db")
    maker = ClipMaker(
        DEVICE,
        tmp_path / "media",
        lambda cid: rec if cid == "cam-1" else None,
        uploads,
        model="ssd_mobilenet_v1_coco_quant.tflite",
        config_version=lambda: 7,
    )
    rec.start()
    maker.start()
    yield rec, maker, uploads
    maker.stop()
    rec.stop()
    uploads.close()


def test_event_clip_covers_the_span_by_copy(
    parts: tuple[Recorder, ClipMaker, UploadQueue], assets_dir: Path, tmp_path: Path
) -> None:
    rec, maker, uploads = parts
    first = wait_until(lambda: rec.segments(), timeout=10, what="recording")[0]
    time.sleep(1.5)
    started = datetime.now(UTC) - timedelta(seconds=0.2)
    maker.event_started(alert("ev-1", "start", started, None, 1, 1), snapshot_of(assets_dir / ONE_BY_ONE))
    time.sleep(3.0)  # longer than the cache window: the hold must keep the event's beginning
    now = datetime.now(UTC)
    beyond_window = [s for s in rec.segments() if s.end < now - timedelta(seconds=1.0)]
    assert beyond_window and beyond_window[0].start_hi <= started - timedelta(seconds=1)
    ended = datetime.now(UTC)
    maker.event_ended(alert("ev-1", "end", started, ended, 1, 1))
    assert maker.wait_idle(20)

    clip = tmp_path / "media" / "ev-1.mp4"
    side = ClipSidecar.model_validate_json((tmp_path / "media" / "ev-1.json").read_text())
    duration, codec = probe_media(clip)
    need = (ended - started).total_seconds() + 2.0
    # Covers the event plus pre/post; whole segments overshoot by at most about one at each end.
    # Wall clock against content: a CPU-starved ffmpeg runs a little behind real time.
    assert need - LAG_S <= duration <= need + 2 * 1.0 + 0.5, (duration, need)
    assert codec == "h264"
    assert side.sha256 == sha256_file(clip) and side.size == clip.stat().st_size
    assert side.duration_s == pytest.approx(duration, abs=0.01)
    assert side.covered_start <= started - timedelta(seconds=1) + timedelta(seconds=1 / FPS)
    assert side.covered_end >= ended + timedelta(seconds=1) - timedelta(seconds=1 / FPS)
    assert (side.event_id, side.device_id, side.camera_id, side.rule) == (
        "ev-1",
        "dev-1",
        "cam-1",
        "plaza.intrusion",
    )
    assert (side.model, side.config_version) == ("ssd_mobilenet_v1_coco_quant.tflite", 7)
    assert json.loads((tmp_path / "media" / "ev-1.json").read_text())["ended_at"].endswith("Z")

    # By copy, and from the right moment: the clip's pictures are the source's, starting where the
    # wall clock says (recording began at the source's frame 0 when the first segment opened).
    source = frame_hashes(assets_dir / ONE_BY_ONE, limit=200)
    got = frame_hashes(clip)
    k = source.index(got[0])
    assert got == source[k : k + len(got)]
    expected_k = (side.covered_start - first.start).total_seconds() * FPS
    assert abs(k - expected_k) <= FPS * 1.0, (k, expected_k)  # within a second, even on a loaded machine

    jpeg = cv2.imdecode(
        np.frombuffer((tmp_path / "media" / "ev-1.jpg").read_bytes(), np.uint8), cv2.IMREAD_COLOR
    )
    assert jpeg is not None and jpeg.shape == (432, 768, 3)

    queued = {k: uploads.get("ev-1", k) for k in ("snapshot", "clip", "sidecar")}
    assert all(item is not None and item.state == "pending" for item in queued.values())
    assert queued["clip"].sha256 == side.sha256  # type: ignore[union-attr]
    assert uploads.backlog().count == 3
    assert rec.state().held_events == 0  # released once cut
    assert maker.stats().clips_made == 1 and maker.stats().clips_short == 0


def test_span_past_the_end_of_a_file_gives_a_short_clip(assets_dir: Path, tmp_path: Path) -> None:
    cam = CameraConfig.model_validate(
        {"id": "cam-1", "source": str(assets_dir / "video/traffic_frames.mp4"), "record": {"segment_s": 1}}
    )
    rec = Recorder(cam, tmp_path / "cache")
    uploads = UploadQueue(tmp_path / "media.db")
    maker = ClipMaker(DEVICE, tmp_path / "media", lambda cid: rec, uploads)
    rec.start()
    maker.start()
    try:
        t0 = datetime.now(UTC)
        wait_until(lambda: rec.state().finished, timeout=10, what="end of the file")
        maker.handle(alert("ev-2", "end", t0, t0 + timedelta(seconds=0.3), 5, 5))
        offline = alert("ev-3", "end", t0, t0 + timedelta(seconds=0.3), 5, 5).model_copy(
            update={"type": "camera_offline"}
        )
        maker.handle(offline)
        assert maker.wait_idle(10)
        st = maker.stats()
        assert st.clips_made == 1 and st.clips_short == 1
        duration, _ = probe_media(tmp_path / "media" / "ev-2.mp4")
        assert 0.5 <= duration <= 0.8  # all of the 20-frame file there is
        assert not (tmp_path / "media" / "ev-3.mp4").exists()  # no video for a dark camera
    finally:
        maker.stop()
        rec.stop()
        uploads.close()


def test_an_end_waiting_for_post_capture_survives_an_agent_restart(assets_dir: Path, tmp_path: Path) -> None:
    cam = looping(assets_dir)
    rec = Recorder(cam, tmp_path / "cache")
    uploads = UploadQueue(tmp_path / "media.db")
    maker = ClipMaker(DEVICE, tmp_path / "media", lambda cid: rec, uploads)
    maker.start()
    rec.start()
    started, ended = record_event(rec, maker, "ev-4", 1.0)
    time.sleep(0.5)
    maker.stop()  # the agent goes down inside the post-capture second
    assert not (tmp_path / "media" / "ev-4.mp4").exists()
    time.sleep(1.5)
    rec.stop()
    uploads.close()

    uploads = UploadQueue(tmp_path / "media.db")
    rec = Recorder(cam, tmp_path / "cache")
    maker = ClipMaker(DEVICE, tmp_path / "media", lambda cid: rec, uploads)
    maker.start()  # before the recorder, so the saved job holds the old segments from the first prune
    rec.start()
    try:
        assert maker.wait_idle(20)
    finally:
        maker.stop()
        rec.stop()
    duration, _ = probe_media(tmp_path / "media" / "ev-4.mp4")
    need = (ended - started).total_seconds() + 2.0
    # Wall clock against content: a CPU-starved ffmpeg runs a little behind real time.
    assert need - LAG_S <= duration <= need + 2 * 1.0 + 0.5, (duration, need)
    assert uploads.jobs() == [] and uploads.get("ev-4", "clip") is not None
    uploads.close()


def test_a_long_event_keeps_its_beginning_and_its_end(assets_dir: Path, tmp_path: Path) -> None:
    """Held segments are bounded: past hold_head_s the middle goes, the clip is head + tail."""
    cam = looping(assets_dir)
    rec = Recorder(cam, tmp_path / "cache", keep_s=1.0, hold_head_s=2.0)
    uploads = UploadQueue(tmp_path / "media.db")
    maker = ClipMaker(DEVICE, tmp_path / "media", lambda cid: rec, uploads)
    maker.start()
    rec.start()
    try:
        started, ended = record_event(rec, maker, "ev-5", 7.0)
        assert maker.wait_idle(20)
    finally:
        maker.stop()
        rec.stop()
        uploads.close()
    side = ClipSidecar.model_validate_json((tmp_path / "media" / "ev-5.json").read_text())
    duration, _ = probe_media(tmp_path / "media" / "ev-5.mp4")
    span = (ended - started).total_seconds() + 2.0
    assert side.covered_start <= started - timedelta(seconds=1) + timedelta(seconds=1 / FPS)
    assert side.covered_end >= ended + timedelta(seconds=1) - timedelta(seconds=1 / FPS)
    assert side.gap_s >= 2.0 and duration <= span - 2.0, (side.gap_s, duration, span)
    assert duration >= 2.0 + 1.0 + 1.0  # pre + the held head ... + the end with its post-capture


def test_a_pi_camera_event_gets_its_clip_from_the_frames_the_capture_hands_over(
    assets_dir: Path, tmp_path: Path
) -> None:
    """The Pi camera cannot exist here: real footage stands in for its frames, through the agent's hook."""
    config = DeviceConfig.model_validate(
        {"device": {"id": DEVICE.id, "ward": DEVICE.ward}, "broker": {"url": "mqtt://127.0.0.1:1883"},
         "storage": {"path": str(tmp_path / "data")},
         "cameras": [{"id": "cam-1", "source": "picamera2:0",
                      "record": {"segment_s": 1, "pre_capture_s": 1, "post_capture_s": 1}},
                     {"id": "cam-2", "source": "rtsp://10.0.0.9/stream", "record": {"enabled": False}}]}
    )  # fmt: skip
    media = DeviceMedia(config)
    media.start()
    try:
        hook = media.frame_hook("cam-1")
        assert hook is not None and media.frame_hook("cam-2") is None
        cap = cv2.VideoCapture(str(assets_dir / ONE_BY_ONE))
        started = ended = None
        for i in range(60):  # six seconds at 10 fps; the event spans seconds 2 to 3.5
            ok, image = cap.read()
            assert ok
            hook(Frame(image=image, ts=datetime.now(UTC), index=i), [], [])
            if i == 20:
                started = datetime.now(UTC)
                media.event_started(alert("ev-6", "start", started, None, 1, 1), None)
            if i == 35:
                ended = datetime.now(UTC)
                media.event_ended(alert("ev-6", "end", started, ended, 1, 1))  # type: ignore[arg-type]
            time.sleep(0.1)
        cap.release()
        assert media.clips.wait_idle(20)
    finally:
        media.stop()
    assert started is not None and ended is not None
    clip = tmp_path / "data" / "media" / "ev-6.mp4"
    duration, codec = probe_media(clip)
    need = (ended - started).total_seconds() + 2.0
    assert codec == "h264" and need - LAG_S <= duration <= need + 2 * 1.0 + 0.5, (duration, need)
