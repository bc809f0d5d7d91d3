"""Violations → the Alert payloads of the contract, with a snapshot on starts and a clip on ends."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from device.evidence_snapshot import evidence_jpeg
from device.frames import Frame
from device.rules import Change
from device.tracker import Track
from matthan_wire import Alert, ClipRef
from matthan_wire.config import CATEGORY_OF, CameraConfig, DeviceIdentity, Line, Zone, rule_name
from matthan_wire.topics import Kind, device_topic


@dataclass(frozen=True)
class DetectedEvent:
    alert: Alert  # phase start or end, seq already assigned
    snapshot_jpeg: bytes | None  # with the start: the evidence JPEG; None on ends


def titles(camera: CameraConfig, place: str, rule: str) -> tuple[str | None, str | None]:
    """The display names of the zone or line and of the rule, when the config gives them."""
    places: list[Zone | Line] = [*camera.zones, *camera.lines]
    for p in places:
        if p.name == place:
            for r in p.rules:
                if rule_name(p, r) == rule:
                    return p.title, r.title
            return p.title, None
    return None, None


def to_event(
    change: Change,
    device: DeviceIdentity,
    camera: CameraConfig,
    next_seq: Callable[[], int],
    frame: Frame | None,
    tracks: Iterable[Track] = (),
) -> DetectedEvent:
    v = change.violation
    zone_title, rule_title = titles(camera, v.place, v.rule)
    jpeg = None
    if change.phase == "start" and frame is not None:
        jpeg = evidence_jpeg(
            frame.image, camera, tracks, v, tz=device.timezone, rule_title=rule_title, place_title=zone_title
        )
    clip = None
    if change.phase == "end" and camera.record.enabled:
        assert v.ended_at is not None
        start = v.started_at - timedelta(seconds=camera.record.pre_capture_s)
        end = v.ended_at + timedelta(seconds=camera.record.post_capture_s)
        clip = ClipRef(
            name=f"{v.event_id}.mp4", start=start, end=end, duration_s=(end - start).total_seconds()
        )
    alert = Alert(
        event_id=v.event_id,
        phase=change.phase,
        device_id=device.id,
        camera_id=camera.id,
        ward=device.ward,
        zone=v.place,
        rule=v.rule,
        type=v.type,
        category=CATEGORY_OF[v.type],
        labels=list(v.labels),
        object_count=v.object_count,
        score=float(min(1.0, max(0.0, v.score))),
        bbox=[round(min(1.0, max(0.0, c)), 4) for c in v.bbox] if v.bbox is not None else None,
        started_at=v.started_at,
        ended_at=v.ended_at if change.phase == "end" else None,
        seq=next_seq(),
        snapshot=device_topic(Kind.SNAPSHOT, device.ward, device.id, v.event_id)
        if jpeg is not None
        else None,
        clip=clip,
        site=camera.site,
        zone_title=zone_title,
        rule_title=rule_title,
    )
    return DetectedEvent(alert, jpeg)
