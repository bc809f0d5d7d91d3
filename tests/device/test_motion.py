"""The motion gate on real frames: still scenes stay quiet, moving people wake the detector."""

import threading

import numpy as np

from device.capture import Capture
from device.motion import MotionGate
from matthan_wire.config import MotionConfig


def _gate_over(path: str, config: MotionConfig | None = None) -> str:
    gate = MotionGate(config or MotionConfig())
    cap = Capture(path, 5.0, threading.Event(), paced=False)
    return "".join("M" if gate.update(f.image) else "." for f in cap.frames())


def test_still_frames_are_not_motion(video) -> None:  # type: ignore[no-untyped-def]
    cap = Capture(str(video("car-detection.mp4")), 5.0, threading.Event(), paced=False)
    first = next(iter(cap.frames())).image
    gate = MotionGate(MotionConfig())
    assert gate.update(first)  # nothing to compare with yet
    noise = np.random.default_rng(1).integers(-3, 4, first.shape)
    for _ in range(10):
        # Sensor noise of a few grey levels is not motion.
        assert not gate.update(np.clip(first.astype(int) + noise, 0, 255).astype(np.uint8))
    moved = first.copy()
    moved[150:260, 300:420] = (30, 30, 30)  # a dark object the size of a car appears
    assert gate.update(moved)
    assert gate.last_area > 0.002


def test_the_gate_follows_the_cars_on_the_empty_lane(video) -> None:  # type: ignore[no-untyped-def]
    # car-detection: empty asphalt with cars passing at about 5–9 s, 16–22 s and 27–29 s.
    marks = _gate_over(str(video("car-detection.mp4")))
    assert marks[0] == "M"
    quiet = marks[1:20]  # 0.2–4 s: nothing moves
    assert set(quiet) == {"."}
    assert "M" * 10 in marks[20:50]
    assert 0.3 < marks.count("M") / len(marks) < 0.7


def test_a_higher_threshold_sees_less(video) -> None:  # type: ignore[no-untyped-def]
    path = str(video("car-detection.mp4"))
    normal = _gate_over(path).count("M")
    blunt = _gate_over(path, MotionConfig(threshold=120, min_area=0.05)).count("M")
    assert blunt < normal
