"""DeviceMedia, the agent's one handle on recording, clips and uploads: real footage with a rule that
fires, through the real recorder, clip maker and uploader, to the real cloud."""

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest

from device.agent import Agent
from device.camera_worker import CameraWorker
from device.clip_cut import ClipSidecar, probe_media
from device.errors import DeviceError
from device.events import DetectedEvent
from device.ffmpeg import FFMPEG
from device.media import DeviceMedia
from matthan_wire import Alert, Health, decode
from matthan_wire.config import DeviceConfig, ModelConfig
from tests.support.broker import Mosquitto
from tests.support.cloud_server import DEVICE, Cloud
from tests.support.net import wait_until


def device_config(video: Path, **sections: Any) -> DeviceConfig:
    """dev-1 with one camera on `video`: 1 s segments, an intrusion rule over the whole picture."""
    return DeviceConfig.model_validate(
        {
            "device": {"id": DEVICE.id, "ward": DEVICE.ward},
            "cameras": [
                {"id": "cam-1", "source": str(video), "detect": {"fps": 5},
                 "record": {"segment_s": 1, "pre_capture_s": 1, "post_capture_s": 1},
                 "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                            "rules": [{"type": "intrusion", "labels": ["person"]}]}]}
            ],
            **sections,
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def walk_in_walk_out(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s of one-by-one, by copy: an empty room, a person walks in (~2.6 s) and out again.

    Seconds 4–8 and 19–23 of the original (a keyframe every second), joined by the concat demuxer.
    """
    d = tmp_path_factory.mktemp("walk")
    src = assets_dir / "video/one-by-one-person-detection.mp4"
    parts = []
    for i, (ss, to) in enumerate(((4, 8), (19, 23))):
        part = d / f"part{i}.mp4"
        subprocess.run(
            [FFMPEG, "-v", "error", "-ss", str(ss), "-to", str(to), "-i", str(src), "-map", "0:v",
             "-c", "copy", str(part)],
            check=True,
        )  # fmt: skip
        parts.append(part)
    (d / "list.txt").write_text("".join(f"file '{p}'\n" for p in parts))
    out = d / "walk.mp4"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(d / "list.txt"),
            "-c",
            "copy",
            str(out),
        ],
        check=True,
    )
    return out


def test_an_event_on_real_footage_reaches_the_cloud_as_a_verified_clip(
    cloud: Cloud, walk_in_walk_out: Path, model_config: ModelConfig, tmp_path: Path
) -> None:
    token_file = tmp_path / "device.token"
    token_file.write_text(cloud.token + "\n")
    config = device_config(
        walk_in_walk_out,
        broker={"url": "mqtt://127.0.0.1:1883"},  # unused: the agent's MQTT side is not under test
        cloud={"url": cloud.url, "token_file": str(token_file), "upload_max_bytes_per_s": 4_000_000},
        storage={"path": str(tmp_path / "storage"), "cache_path": str(tmp_path / "tmpfs")},
    )
    media = DeviceMedia(config, model="ssd", config_version=lambda: 3)
    assert media.uploader is not None and media.uploader.max_bytes_per_s == 4_000_000
    events: list[DetectedEvent] = []

    def on_event(ev: DetectedEvent) -> None:  # what the agent does with each event, minus MQTT
        events.append(ev)
        media.clips.handle(ev.alert, ev.snapshot_jpeg)

    seq = iter(range(1, 1000))
    worker = CameraWorker(DEVICE, config.cameras[0], model_config, on_event, lambda: next(seq), paced=True)
    media.start()
    worker.start()
    try:
        wait_until(lambda: media.recording_up("cam-1"), timeout=10, what="recording")
        assert worker.wait_finished(30)
        assert media.clips.wait_idle(30)
        wait_until(lambda: media.upload_view().backlog == 0, timeout=30, what="everything uploaded")
        view = media.upload_view()
        assert view.backlog_bytes == 0 and view.evicted_unconfirmed_total == 0
    finally:
        worker.stop()
        media.stop()
    assert list((tmp_path / "tmpfs" / "cam-1").glob("*.ts")), "segments go to storage.cache_path"
    ends = [e.alert for e in events if e.alert.phase == "end"]
    # One walk-in on the footage; a starved detector could split it, and every part has its clip.
    assert ends, [e.alert for e in events]
    for end in ends:
        assert end.ended_at is not None
        need = (end.ended_at - end.started_at).total_seconds() + 2.0
        got = tmp_path / f"{end.event_id}.from-cloud.mp4"
        got.write_bytes(cloud.get(end.event_id, "clip"))
        duration, codec = probe_media(got)  # ffprobe reads what the cloud holds
        assert codec == "h264"
        assert need - 0.5 <= duration <= need + 2 * 1.0 + 0.5, (duration, need)
        side = ClipSidecar.model_validate_json(cloud.get(end.event_id, "sidecar"))
        assert side.sha256 == hashlib.sha256(got.read_bytes()).hexdigest()
        assert side.event_id == end.event_id and side.config_version == 3
        jpeg = cv2.imdecode(np.frombuffer(cloud.get(end.event_id, "snapshot"), np.uint8), cv2.IMREAD_COLOR)
        # The evidence snapshot: the whole frame (768 × 432 here) above its caption band.
        assert jpeg is not None and jpeg.shape[1] == 768 and jpeg.shape[0] > 432


def test_the_agent_hands_events_to_device_media_and_reports_the_backlog(
    own_cloud: Cloud, broker: Mosquitto, walk_in_walk_out: Path, model_config: ModelConfig, tmp_path: Path
) -> None:
    """The real agent (outbox, MQTT link, health) with DeviceMedia as its clip sink and upload view."""
    cloud = own_cloud
    token_file = tmp_path / "device.token"
    token_file.write_text(cloud.token)
    config = device_config(
        walk_in_walk_out,
        broker={"url": broker.url},
        cloud={"url": cloud.url, "token_file": str(token_file)},
        storage={"path": str(tmp_path / "storage")},
        health={"interval_s": 1},
        model=model_config.model_dump(),
    )
    got: dict[str, list[bytes]] = {"event": [], "health": []}
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub", protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, msg: got.setdefault(msg.topic.split("/")[4], []).append(msg.payload)
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(f"matthan/v1/{DEVICE.ward}/{DEVICE.id}/#", qos=1)
    sub.loop_start()
    media = DeviceMedia(config, model=Path(model_config.path).name)
    # As `device run` composes it: the agent starts the media side before its cameras, stops it after.
    agent = Agent(config, media=lambda cfg, version: media)
    cloud.kill()  # the cloud is down at first: health must show the backlog, then see it drain
    agent.start()
    try:
        waiting = wait_until(
            lambda: [h for h in (decode(Health, p) for p in got["health"]) if h.upload_backlog > 0],
            timeout=30,
            what="health reporting a backlog",
        )
        assert waiting[-1].upload_backlog_bytes > 0 and waiting[-1].upload_oldest_age_s is not None
        assert [c.recording for c in waiting[-1].cameras] == [True]  # the recorder's state reaches health
        cloud.start()
        wait_until(lambda: got["event"], timeout=30, what="an event end on MQTT")
        assert media.clips.wait_idle(30)
        wait_until(lambda: media.upload_view().backlog == 0, timeout=60, what="clip uploaded")
        wait_until(lambda: decode(Health, got["health"][-1]).upload_backlog == 0, timeout=10, what="health")
    finally:
        agent.stop()
        sub.loop_stop()
        sub.disconnect()
    end = decode(Alert, got["event"][0])
    assert end.clip is not None and end.clip.name == f"{end.event_id}.mp4"
    clip = cloud.get(end.event_id, "clip")
    side = ClipSidecar.model_validate_json(cloud.get(end.event_id, "sidecar"))
    assert (
        side.sha256 == hashlib.sha256(clip).hexdigest() and side.model == "ssd_mobilenet_v1_coco_quant.tflite"
    )
    assert side.clip_start == end.clip.start and side.clip_end == end.clip.end


def test_unusable_storage_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage folder should be")
    config = DeviceConfig.model_validate(
        {"device": {"id": DEVICE.id, "ward": DEVICE.ward}, "broker": {"url": "mqtt://127.0.0.1:1883"},
         "storage": {"path": str(blocker / "data")},
         "cameras": [{"id": "cam-1", "source": "rtsp://10.0.0.1/stream"}]}
    )  # fmt: skip
    with pytest.raises(DeviceError) as err:
        DeviceMedia(config)
    message = str(err.value)
    assert "upload queue" in message and str(blocker) in message and "\n" not in message
