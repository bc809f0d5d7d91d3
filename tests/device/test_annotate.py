"""Drawing: zones, lines, boxes with ids, and the alarmed ones in red."""

from datetime import UTC, datetime, timedelta

import numpy as np

from device.annotate import RED, YELLOW, annotated
from device.detector import Detection
from device.rules import Violation
from device.tracker import Tracker
from matthan_wire.config import CameraConfig

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
CAM = CameraConfig.model_validate({
    "id": "cam", "source": "x.mp4",
    "zones": [{"name": "plaza", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]}],
    "lines": [{"name": "entry", "points": [[0.0, 0.95], [1.0, 0.95]]}],
})  # fmt: skip


def _tracks():  # type: ignore[no-untyped-def]
    tr = Tracker()
    for i in range(3):  # walks right along y = 0.7, ending at x1 = 0.4
        x = 0.3 + 0.05 * i
        tracks = tr.update(T0 + timedelta(seconds=i), [Detection("person", 0.8, (x, 0.4, x + 0.1, 0.7))])
    return tracks


def test_zones_lines_and_boxes_are_drawn_on_a_copy() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    out = annotated(image, CAM, _tracks(), [])
    assert not image.any()  # the source frame is untouched (it may be the snapshot of another event)
    assert tuple(out[20, 150]) == YELLOW  # top edge of the zone at y = 0.1
    assert tuple(out[190, 150]) == YELLOW  # the line at y = 0.95
    assert tuple(out[100, 120]) != (0, 0, 0)  # the box's left edge at x = 0.4
    assert tuple(out[140, 110]) != (0, 0, 0)  # the trail of its feet, behind it at y = 0.7


def test_the_violation_is_red() -> None:
    tracks = _tracks()
    v = Violation("e1", "plaza.intrusion", "intrusion", "plaza", ("person",), 1, 0.8, (0.4, 0.4, 0.5, 0.7),
                  T0, None, (tracks[0].id,))  # fmt: skip
    out = annotated(np.zeros((200, 300, 3), np.uint8), CAM, tracks, [v])
    assert tuple(out[20, 150]) == RED  # the alarmed zone
    assert tuple(out[100, 120]) == RED  # its object
