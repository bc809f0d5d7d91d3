"""Degraded variants of a real clip, made with ffmpeg: what a street camera delivers on a bad day.

Each variant keeps the clip's length and frame rate, so events can be compared with the clean
clip's by time: low light (gamma), sensor noise, heavy compression, one frame in three lost (the
decoder repeats the previous one), and a 2 s freeze (the same picture, then the stream goes on).
"""

import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device.capture import Capture
from device.detector import load_detector
from device.rules import Change, RuleEngine
from device.tracker import Tracker
from matthan_wire.config import CameraConfig, ModelConfig

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)

# ffmpeg arguments after the input, per variant. "clean" is the same frames, cut by stream copy.
VARIANTS: dict[str, list[str]] = {
    "clean": ["-c", "copy"],
    "low light": ["-vf", "eq=gamma=0.6:brightness=-0.15:contrast=0.8", "-c:v", "libx264", "-crf", "20"],
    "sensor noise": ["-vf", "noise=alls=30:allf=t+u", "-c:v", "libx264", "-crf", "20"],
    "heavy compression": ["-c:v", "libx264", "-crf", "45"],
    "1 in 3 frames lost": [
        "-vf", "select='not(eq(mod(n\\,3)\\,2))'", "-fps_mode", "cfr", "-r", "10",
        "-c:v", "libx264", "-crf", "20",
    ],
    "2 s freeze": [
        "-filter_complex", "[0:v]split[a][b];[a][b]freezeframes=first=80:last=99:replace=79",
        "-c:v", "libx264", "-crf", "20",
    ],
}  # fmt: skip

# Short segments of the regression clips, with places where something happens (the standing pair
# at the lamp post on vtest, people crossing the middle, a crowd; a visitor at the table and
# leaving on one-by-one) and places where nothing should (an empty lawn corner, a traffic cone).
LAMP_FOOT = [[0.46, 0.40], [0.60, 0.40], [0.60, 0.52], [0.46, 0.52]]
CONE = [[0.03, 0.30], [0.09, 0.30], [0.09, 0.35], [0.03, 0.35]]
SEGMENTS: dict[str, tuple[str, float, dict[str, Any]]] = {
    "vtest": ("vtest_480x360.mp4", 16.0, {
        "zones": [
            {"name": "lamp", "polygon": LAMP_FOOT,
             "rules": [{"type": "loitering", "labels": ["person"], "min_duration_s": 10}]},
            {"name": "cone", "polygon": CONE,
             "rules": [{"type": "intrusion", "labels": ["person"], "min_duration_s": 10}]},
            {"name": "lawn-corner", "polygon": [[0.0, 0.85], [0.15, 0.85], [0.15, 1.0], [0.0, 1.0]],
             "rules": [{"type": "intrusion", "labels": ["person"]}]},
            {"name": "walkway", "polygon": [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]],
             "rules": [{"type": "crowd", "labels": ["person"], "min_count": 6, "min_duration_s": 5}]},
        ],
        "lines": [{"name": "mid", "points": [[0.45, 0.2], [0.45, 0.6]],
                   "rules": [{"type": "wrong_way", "labels": ["person"], "direction": "right"}]}],
    }),
    "one-by-one": ("one-by-one-person-detection.mp4", 22.0, {
        "zones": [{"name": "table", "polygon": [[0.4, 0.75], [0.75, 0.75], [0.75, 1.0], [0.4, 1.0]],
                   "rules": [{"type": "intrusion", "labels": ["person"], "min_duration_s": 5}]}],
        "lines": [{"name": "exit", "points": [[0.7, 0.5], [0.7, 1.0]],
                   "rules": [{"type": "wrong_way", "labels": ["person"], "direction": "left"}]}],
    }),
}  # fmt: skip


def make_variant(source: Path, out: Path, variant: str, seconds: float) -> Path:
    """The first `seconds` of `source` as `variant` (the freeze covers source frames 80–99: 8–10 s
    of a 10 fps clip)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-t", f"{seconds:g}", "-an",
         *VARIANTS[variant], str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return out


def rule_changes(
    model: ModelConfig, source: Path, places: dict[str, Any], until_s: float | None = None
) -> list[tuple[float, Change]]:
    """The detect stage's tracker and rules over a clip at 5 fps, with the real model and the
    frames' images: each change with its time from the clip's start (clip time 0 is T0)."""
    camera = CameraConfig.model_validate({"id": "cam", "source": str(source)} | places)
    detector = load_detector(model)
    tracker = Tracker(zones={z.name: z.polygon for z in camera.zones})
    engine = RuleEngine(camera, "Asia/Ho_Chi_Minh")
    out: list[tuple[float, Change]] = []
    now = T0
    for frame in Capture(str(source), 5.0, threading.Event(), paced=False, start_time=T0).frames():
        now = frame.ts
        if until_s is not None and (now - T0).total_seconds() > until_s:
            break
        tracks = tracker.update(now, detector.detect(frame.image), frame.image)
        out += [(round((now - T0).total_seconds(), 1), c) for c in engine.update(now, tracks)]
    return out + [(round((now - T0).total_seconds(), 1), c) for c in engine.close(now)]
