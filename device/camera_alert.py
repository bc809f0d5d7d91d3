"""Alerts about a camera itself rather than about what it sees (`camera_offline`, `camera_tamper`):
no zone, no object, full confidence. One builder, so both kinds fill the contract alike."""

from datetime import datetime
from typing import Literal

from matthan_wire import Alert, TamperDetail
from matthan_wire.config import CATEGORY_OF, DeviceIdentity


def camera_alert(
    device: DeviceIdentity,
    camera_id: str,
    rule_type: Literal["camera_offline", "camera_tamper"],
    rule: str,
    event_id: str,
    started: datetime,
    ended: datetime | None,
    seq: int,
    snapshot: str | None = None,
    tamper: TamperDetail | None = None,
) -> Alert:
    """The start (`ended` None) or the end of a camera's alert."""
    return Alert(
        event_id=event_id,
        phase="start" if ended is None else "end",
        device_id=device.id,
        camera_id=camera_id,
        ward=device.ward,
        zone=None,
        rule=rule,
        type=rule_type,
        category=CATEGORY_OF[rule_type],
        labels=[],
        object_count=0,
        score=1.0,
        bbox=None,
        started_at=started,
        ended_at=ended,
        seq=seq,
        snapshot=snapshot,
        clip=None,
        tamper=tamper,
    )
