"""Violations → contract Alerts: fields, snapshot topic, clip span, wire round trip."""

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from device.events import to_event
from device.frames import Frame
from device.rules import Change, Violation
from matthan_wire import Alert, decode, encode
from matthan_wire.config import CameraConfig, DeviceIdentity

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
DEVICE = DeviceIdentity(id="q1-rex-01", ward="ben-nghe")
VIOLATION = Violation(
    event_id="0b9f3c1e-2a4d-4e8f-9c1b-6d2e7f8a9b0c",
    rule="curb.illegal_parking",
    type="illegal_parking",
    place="curb",
    labels=("car",),
    object_count=1,
    score=0.66015625,
    bbox=(0.95, 0.08, 1.0000001, 0.16),
    started_at=T0,
    ended_at=None,
    track_ids=(3,),
)


def cam(record: bool = True) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "rex-north",
            "source": "x.mp4",
            "record": {"enabled": record, "pre_capture_s": 4, "post_capture_s": 6},
        }
    )


def test_a_start_carries_the_snapshot_and_no_clip() -> None:
    frame = Frame(np.full((360, 480, 3), 90, np.uint8), T0, 7)
    seqs = iter([41])
    ev = to_event(Change("start", VIOLATION), DEVICE, cam(), lambda: next(seqs), frame)
    a = ev.alert
    assert (a.phase, a.seq, a.event_id, a.rule, a.type, a.category) == (
        "start", 41, VIOLATION.event_id, "curb.illegal_parking", "illegal_parking", "urban_order",
    )  # fmt: skip
    assert (a.device_id, a.camera_id, a.ward, a.zone) == ("q1-rex-01", "rex-north", "ben-nghe", "curb")
    assert a.labels == ["car"] and a.object_count == 1 and a.score == pytest.approx(0.66, abs=0.001)
    assert a.bbox == [0.95, 0.08, 1.0, 0.16]  # clamped to the frame
    assert a.started_at == T0 and a.ended_at is None and a.clip is None
    assert a.snapshot == f"matthan/v1/ben-nghe/q1-rex-01/snapshot/{VIOLATION.event_id}"
    assert ev.snapshot_jpeg is not None and ev.snapshot_jpeg[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(ev.snapshot_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] == 480 and image.shape[0] > 360  # the frame, then the caption band
    assert decode(Alert, encode(a)) == a


def test_an_end_carries_the_clip_span_when_recording() -> None:
    ended = VIOLATION.__class__(**{**VIOLATION.__dict__, "ended_at": T0 + timedelta(seconds=90)})
    ev = to_event(Change("end", ended), DEVICE, cam(), lambda: 42, None)
    a = ev.alert
    assert ev.snapshot_jpeg is None and a.snapshot is None
    assert a.ended_at == T0 + timedelta(seconds=90)
    assert a.clip is not None
    assert a.clip.name == f"{VIOLATION.event_id}.mp4"
    assert a.clip.start == T0 - timedelta(seconds=4) and a.clip.end == T0 + timedelta(seconds=96)
    assert a.clip.duration_s == 100.0 and a.clip.sha256 is None and a.clip.size is None
    assert decode(Alert, encode(a)) == a
    no_rec = to_event(Change("end", ended), DEVICE, cam(record=False), lambda: 43, None)
    assert no_rec.alert.clip is None


def test_a_start_carries_the_cameras_site_and_the_display_names() -> None:
    camera = CameraConfig.model_validate({
        "id": "rex-north", "source": "x.mp4",
        "site": {"name": "Ngã tư Bến Thành", "address": "Lê Lợi, Quận 1", "lat": 10.7725, "lon": 106.698},
        "zones": [{"name": "curb", "title": "lề đường chợ", "polygon": [[0, 0], [1, 0], [1, 1]],
                   "rules": [{"type": "illegal_parking", "title": "Đỗ xe trước chợ", "labels": ["car"],
                              "min_duration_s": 5}]}],
    })  # fmt: skip
    frame = Frame(np.full((360, 480, 3), 90, np.uint8), T0, 7)
    a = to_event(Change("start", VIOLATION), DEVICE, camera, lambda: 1, frame).alert
    assert a.site is not None and a.site.name == "Ngã tư Bến Thành" and a.site.lat == 10.7725
    assert (a.zone_title, a.rule_title) == ("lề đường chợ", "Đỗ xe trước chợ")
    assert decode(Alert, encode(a)) == a
